"""Distil a super-resolution student from a frozen teacher (see README.md, "Training")."""

import hydra
from omegaconf import DictConfig

from srdistill.cli.app import run_hydra_main


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    # imported here so that a mistyped option is reported without loading torch and Lightning
    from srdistill.cli.train import main_from_cfg

    return main_from_cfg(cfg)


if __name__ == "__main__":
    run_hydra_main(main)
