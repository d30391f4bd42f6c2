"""A student of the user's own code, for export: built from the ``conf/model`` config that
``model=`` names on the command line, holding the weights of a run checkpoint or weights file.

Such a config's ``_target_`` is outside srdistill; the user's config folder is found through
``hydra.searchpath`` and the package through ``PYTHONPATH``. A file never names code: a run of
such a student records only that srdistill cannot rebuild it, and export then asks for
``model=``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from srdistill.cli.common import check_scale, model_choice
from srdistill.export_formats import Reload
from srdistill.models.checkpoint import CheckpointError, read_checkpoint_file
from srdistill.models.from_file import is_run_checkpoint
from srdistill.models.load import load_network
from srdistill.models.registry import MODELS
from srdistill.models.run_student import BUILD_RECORD_KEY


def is_own_model(cfg: DictConfig) -> bool:
    """``model=`` names a config of the user's own code: not a srdistill model, and its
    ``_target_`` outside srdistill (srdistill's other configs, e.g. spandrel, stay refused)."""
    if cfg.get("model") is None or model_choice() in MODELS:
        return False
    target = str(cfg.model.get("_target_", ""))
    return not (target == "srdistill" or target.startswith("srdistill."))


def check_importable(cfg: DictConfig) -> None:
    """The config's ``_target_`` imports, checked before any file is read."""
    target = str(cfg.model.get("_target_", ""))
    module, _, name = target.rpartition(".")
    try:  # importlib itself: hydra's locator logs its own error lines before raising
        getattr(importlib.import_module(module), name)
    except Exception as err:  # noqa: BLE001 - any import failure is the user's set-up
        raise ValueError(
            f"model={model_choice()}: cannot import its _target_ {target!r} "
            f"({str(err).splitlines()[0]}); put its package on PYTHONPATH"
        ) from None


def refuse_run_of_own_model(path: str | Path) -> None:
    """Raise a one-line error saying to give ``model=`` when ``path`` is a run of a student
    srdistill cannot rebuild; return otherwise."""
    raw = read_checkpoint_file(path, "ckpt")
    build = raw.get(BUILD_RECORD_KEY) if is_run_checkpoint(raw) else None
    if isinstance(build, Mapping) and build.get("unavailable"):
        raise CheckpointError(
            f"ckpt={path} is a run of a student that is not one of srdistill's models "
            f"({str(build['unavailable'])[:200]}); a checkpoint never names code: give "
            "model=<its conf/model name>, with hydra.searchpath=[file://<your conf dir>] and "
            "its package importable (PYTHONPATH)"
        )


def own_network(cfg: DictConfig) -> tuple[nn.Module, int, Reload]:
    """The deployed student of ``cfg.ckpt`` in the network the ``model=`` config builds, its
    upscaling factor, and how a written state dict is loaded back (into a fresh network)."""
    raw = read_checkpoint_file(cfg.ckpt, "ckpt")
    scale = own_scale(cfg, raw.get("hyper_parameters") if is_run_checkpoint(raw) else None)
    del raw  # the loader reads the file again, as it needs it

    def load(path, option: str) -> nn.Module:
        # a run's student: adapters merged, averaged, in eval mode, as training's final evaluation
        network = instantiate_own(cfg, scale)
        return load_network(
            path, scale=scale, into=network, name=model_choice(), option=option, use_ema=cfg.use_ema
        ).network

    return load(cfg.ckpt, "ckpt"), scale, lambda written: load(written, "out")


def own_scale(cfg: DictConfig, hparams: object) -> int:
    """``scale=`` or the run's factor (its hyper-parameters); both given must agree."""
    given = cfg.get("scale")
    recorded = hparams.get("scale") if isinstance(hparams, Mapping) else None
    if recorded is not None:
        check_scale(recorded)
        if given is not None and given != recorded:
            raise ValueError(
                f"ckpt={cfg.ckpt} is a x{recorded} run, not x{given}; "
                f"drop the scale option or give scale={recorded}"
            )
        return recorded
    if given is None:
        raise ValueError(
            f"ckpt={cfg.ckpt} does not say its upscaling factor: give scale=<factor> "
            f"with model={model_choice()}"
        )
    return given


def instantiate_own(cfg: DictConfig, scale: int) -> nn.Module:
    """The ``model=`` config instantiated, its ``${scale}`` resolving to ``scale``."""
    model_cfg = OmegaConf.merge(cfg, {"scale": scale}).model
    try:
        network = instantiate(model_cfg)
    except InstantiationException as err:
        cause = str(err.__cause__ or err).splitlines()[0]
        raise ValueError(f"model={model_choice()} does not build: {cause}") from None
    if not isinstance(network, nn.Module):
        raise ValueError(f"model={model_choice()} builds a {type(network).__name__}, not a network")
    return network
