"""Export a trained student as a plain weights file (see README.md, "Exporting")."""

import hydra
from omegaconf import DictConfig

from srdistill.cli.app import run_hydra_main


@hydra.main(config_path="conf", config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # imported here so that a mistyped option is reported without loading torch and Lightning
    from srdistill.cli.export import main_from_cfg

    main_from_cfg(cfg)


if __name__ == "__main__":
    run_hydra_main(main)
