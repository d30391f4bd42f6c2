"""Evaluate a super-resolution model on benchmark sets (see README.md, "Evaluating")."""

import hydra
from omegaconf import DictConfig

from srdistill.cli.common import run_hydra_main
from srdistill.cli.eval import main_from_cfg


@hydra.main(config_path="conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    main_from_cfg(cfg)


if __name__ == "__main__":
    run_hydra_main(main)
