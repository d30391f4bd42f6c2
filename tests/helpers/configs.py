"""Composing the project's Hydra configs in tests."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from tests.helpers.shared import REPO_ROOT

CONF_DIR = REPO_ROOT / "conf"


def compose_config(
    name: str, overrides: list[str] | None = None, hydra: bool = False
) -> DictConfig:
    """The composed config; ``hydra=True`` keeps the ``hydra`` node (sweeper params)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=overrides or [], return_hydra_config=hydra)


def model_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
