"""``srdistill-export``: ``export.py`` as an installed command, with the same ``key=value`` options.

It composes the repository's ``conf/export.yaml``, so it runs from a source checkout installed
with ``pip install -e .`` (as the README's setup does).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from srdistill.cli.app import run_hydra_main

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"


def _job(cfg: DictConfig) -> None:
    # imported here so that a mistyped option is reported without loading torch first
    from srdistill.cli.export import main_from_cfg

    main_from_cfg(cfg)


def main() -> None:
    run_hydra_main(
        hydra.main(config_path=str(CONF_DIR), config_name="export", version_base="1.3")(_job)
    )
