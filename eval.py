"""Evaluate a super-resolution model on benchmark sets (see README.md, "Evaluating")."""

import hydra
from omegaconf import DictConfig

from srdistill.cli.app import run_hydra_main


@hydra.main(config_path="conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # imported here so that a mistyped option is reported without loading torch and Lightning
    from srdistill.cli.eval import main_from_cfg

    main_from_cfg(cfg)


if __name__ == "__main__":
    run_hydra_main(main)
