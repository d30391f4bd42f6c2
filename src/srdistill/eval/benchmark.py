"""Evaluate a model on benchmark sets with the paper protocol (see ``srdistill.metrics.sr``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from srdistill.data.benchmark_sets import STANDARD_SETS, BenchmarkDataset, available_sets
from srdistill.eval.tiling import check_tiling, tiled_forward
from srdistill.metrics.sr import PSNR, SSIM


def resolve_sets(root: str | Path, sets: Sequence[str] | None) -> list[str]:
    """The requested sets (all standard sets present when None); fail fast on a missing one."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"benchmark root {root} does not exist; set data.root")
    if sets is None:
        found = available_sets(root, STANDARD_SETS)
        if not found:
            raise FileNotFoundError(f"no benchmark set ({', '.join(STANDARD_SETS)}) under {root}")
        return found
    missing = [name for name in sets if not (root / name / "HR").is_dir()]
    if missing:
        raise FileNotFoundError(
            f"benchmark set(s) {missing} not found under {root} (need <set>/HR)"
        )
    return list(sets)


@torch.no_grad()
def evaluate_set(
    model: nn.Module,
    dataset: BenchmarkDataset,
    device: torch.device | str = "cpu",
    tile: int | None = None,
    tile_overlap: int = 32,
    gray_as_luma: bool = False,
) -> dict[str, float | int]:
    """PSNR/SSIM on Y and PSNR on RGB over one set, whole images one at a time.

    The output is kept as uint8 (what the metrics quantise it to anyway) and the metrics work in
    row strips, so with ``tile`` set the peak memory is the images in 8 bits plus one tile."""
    scale = dataset.scale
    # A local evaluation (possibly on one rank of a DDP job): never synchronise across processes.
    local = {"sync_on_compute": False}
    metrics = {
        "psnr": PSNR(scale, "y", gray_as_luma, **local),
        "ssim": SSIM(scale, "y", gray_as_luma, **local),
        "psnr_rgb": PSNR(scale, "rgb", **local),
    }
    model.eval()
    loader = DataLoader(dataset, batch_size=1, num_workers=0, collate_fn=lambda items: items[0])
    for item in loader:
        lq = item["lq"].unsqueeze(0).to(device)
        sr = tiled_forward(model, lq, scale, tile, tile_overlap, to_uint8=True).cpu()
        gt, gray = item["gt"].unsqueeze(0), torch.tensor([item["gray"]])
        for metric in metrics.values():
            metric.update(sr, gt, gray)
    result: dict[str, float | int] = {k: round(float(m.compute()), 4) for k, m in metrics.items()}
    result["images"] = len(dataset)
    return result


def evaluate_benchmarks(
    model: nn.Module,
    root: str | Path,
    sets: Sequence[str],
    scale: int,
    device: str = "cpu",
    **kwargs,
) -> dict[str, dict]:
    """``{set: {"psnr", "ssim", "psnr_rgb", "images", "seconds"}}`` for each set."""
    check_tiling(kwargs.get("tile"), kwargs.get("tile_overlap", 32))
    model = model.to(device)
    results = {}
    for name in sets:
        start = time.perf_counter()
        dataset = BenchmarkDataset(root, name, scale, gt_uint8=True)
        results[name] = evaluate_set(model, dataset, device, **kwargs)
        results[name]["seconds"] = round(time.perf_counter() - start, 2)
    return results


def format_table(results: dict[str, dict], title: str = "") -> str:
    """A plain-text table: one row per set."""
    lines = [title] if title else []
    lines.append(f"{'set':<12}{'images':>7}{'PSNR-Y':>10}{'SSIM-Y':>9}{'PSNR-RGB':>10}{'sec':>8}")
    for name, r in results.items():
        lines.append(
            f"{name:<12}{r['images']:>7}{r['psnr']:>10.4f}{r['ssim']:>9.4f}"
            f"{r['psnr_rgb']:>10.4f}{r.get('seconds', 0):>8.1f}"
        )
    return "\n".join(lines)
