"""``eval.py``: PSNR/SSIM of one model on benchmark sets, printed and written as JSON."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from torch import nn

from srdistill.cli.common import (
    build_model,
    check_flags,
    check_scale,
    exit_on_user_error,
    model_choice,
)
from srdistill.data.samples import VAL_SET, materialize_samples
from srdistill.eval.benchmark import evaluate_benchmarks, format_table, resolve_sets
from srdistill.eval.ensemble import SelfEnsemble
from srdistill.models.backbones.bicubic import Bicubic
from srdistill.models.load import load_network
from srdistill.outputs import ensure_writable_file, write_json


def benchmark_root_and_sets(data_cfg: DictConfig) -> tuple[Path, list[str]]:
    """The configured benchmarks, or the embedded sample photos when no root is given."""
    if data_cfg.root is None:
        return materialize_samples(), list(data_cfg.sets or [VAL_SET])
    sets = list(data_cfg.sets) if data_cfg.sets is not None else None
    return Path(data_cfg.root), resolve_sets(data_cfg.root, sets)


def evaluated_network(cfg: DictConfig) -> tuple[nn.Module, str]:
    """``model=`` with its weights; without it, the network ``ckpt`` holds (a run checkpoint's
    deployed student, an export, released weights, a zoo entry, a checkpoint spandrel
    recognises: as ``srdistill-upscale`` reads them); with neither, bicubic."""
    if cfg.get("model") is not None:
        name = model_choice()
        return build_model(cfg.model, cfg.ckpt, name, sha256=cfg.get("sha256")), name
    if not cfg.ckpt:
        return Bicubic(cfg.scale), "bicubic"
    loaded = load_network(cfg.ckpt, scale=cfg.scale, sha256=cfg.get("sha256"))
    return loaded.network, loaded.name


def run(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.model`` (weights ``cfg.ckpt``) and return ``{set: metrics}``."""
    check_scale(cfg.scale)  # cheap checks before loading anything
    check_flags(cfg, ("self_ensemble", "gray_as_luma"))
    if cfg.get("sha256") is not None and not cfg.ckpt:
        raise ValueError("sha256= pins the file ckpt= names, but ckpt is not set: give both")
    if cfg.out:
        ensure_writable_file(cfg.out, "out", inputs=[cfg.ckpt])
    root, sets = benchmark_root_and_sets(cfg.data)
    model, name = evaluated_network(cfg)
    ensemble = bool(cfg.get("self_ensemble", False))
    if ensemble:
        # Tiles around the ensemble: each tile is super-resolved x8 and averaged in float before
        # it is rounded to 8 bits, so tiling still equals whole-image inference once the overlap
        # covers the receptive field, and memory stays at one tile (the other order would average
        # tiled outputs already rounded to 8 bits).
        model = SelfEnsemble(model)
    results = evaluate_benchmarks(
        model,
        root,
        sets,
        cfg.scale,
        cfg.device,
        tile=cfg.tile,
        tile_overlap=cfg.tile_overlap,
        gray_as_luma=cfg.gray_as_luma,
    )
    for metrics in results.values():
        metrics["self_ensemble"] = ensemble  # scores with and without are not comparable
    title = f"{name} x{cfg.scale}" + (f" ({cfg.ckpt})" if cfg.ckpt else "")
    print(format_table(results, title + (", x8 self-ensemble" if ensemble else "")))
    if cfg.out:
        write_json(cfg.out, results, "out")
    return results


@exit_on_user_error
def main_from_cfg(cfg: DictConfig) -> dict:
    return run(cfg)
