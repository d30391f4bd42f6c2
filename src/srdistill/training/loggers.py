"""Weights & Biases that never blocks: offline unless an API key is configured."""

from __future__ import annotations

import netrc
import os

from lightning.pytorch.loggers import WandbLogger


def wandb_api_key_configured() -> bool:
    """An API key in WANDB_API_KEY or in ~/.netrc for api.wandb.ai (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_logger(
    project: str, name: str | None = None, save_dir: str = ".", mode: str | None = None, **kwargs
) -> WandbLogger:
    """A WandbLogger in ``mode`` (online/offline/disabled); default offline without a key.

    ``WANDB_MODE`` in the environment wins. Offline runs are written under
    ``save_dir/wandb/offline-run-*`` and can be uploaded later with ``wandb sync``.
    """
    mode = os.environ.get("WANDB_MODE") or mode
    if mode is None:
        mode = "online" if wandb_api_key_configured() else "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(
        project=project,
        name=name,
        save_dir=save_dir,
        offline=mode == "offline",
        mode=mode,
        **kwargs,
    )
