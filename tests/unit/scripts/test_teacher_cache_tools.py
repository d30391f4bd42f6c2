"""benchmarks/teacher_cache_border.py and scripts/teacher_cache_quality.py on hand-made inputs."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from torch import nn

from srdistill.data.paired import PairedImageDataset
from tests.helpers.images import write_png
from tests.helpers.shared import REPO_ROOT
from tests.unit.data.test_paired import noise


def load(relative: str):
    spec = importlib.util.spec_from_file_location(relative.replace("/", "_"), REPO_ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


border = load("benchmarks/teacher_cache_border.py")
quality = load("scripts/teacher_cache_quality.py")


def test_border_distance_counts_whole_lr_pixels_from_the_nearest_edge():
    dist = border.border_distance(8, 2)  # 4 LR pixels: rings 0, 1, 1, 0
    assert dist[0, 0] == 0 and dist[3, 3] == 1 and dist[7, 4] == 0 and dist[2, 5] == 1
    assert dist.tolist() == dist.T.tolist()


def upsampler(kernel: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 12, kernel, padding=kernel // 2), nn.PixelShuffle(2)).eval()


@pytest.fixture
def data(tmp_path):
    for i in range(2):
        write_png(tmp_path / f"{i}.png", noise((40, 44, 3), seed=i))
    return PairedImageDataset(tmp_path, 2, 8, keep_in_memory=True)


def test_a_pointwise_teacher_gives_the_same_target_cached_or_online(data):
    result = border.measure(upsampler(1), data, 8, crops=4, seed=0, rings=3, tile=None)
    assert max(result["mean_abs_diff_255_by_ring"]) < 1e-3
    assert result["psnr_online_target_vs_gt"] == pytest.approx(result["psnr_cached_target_vs_gt"])


def test_a_3x3_teacher_differs_only_in_the_outermost_lr_ring(data):
    rings = border.measure(upsampler(3), data, 8, crops=4, seed=0, rings=3, tile=None)
    by_ring = rings["mean_abs_diff_255_by_ring"]
    assert by_ring[0] > 1 and max(by_ring[1:]) < 1e-3


def write_run(root, name, cache, seed, psnr, wall):
    folder = root / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(f"teacher:\n  cache: {cache}\nseed: {seed}\n")
    results = {"val": {"val/Set5/psnr_y": psnr}, "wall_time_s": wall}
    (folder / "results.json").write_text(json.dumps(results))


def test_the_quality_table_pairs_runs_by_seed(tmp_path):
    for seed, (online, cached) in enumerate([(30.0, 30.1), (30.2, 30.1), (29.9, 30.2)]):
        write_run(tmp_path, f"o{seed}", "false", seed, online, 100.0)
        write_run(tmp_path, f"c{seed}", "true", seed, cached, 50.0 + seed)
    table = quality.table(quality.runs(tmp_path))
    diffs = np.array([0.1, -0.1, 0.3])
    assert f"{diffs.mean():+.4f} ± {diffs.std(ddof=1):.4f}" in table
    assert "30.0333 ± 0.1528" in table  # online mean and sample standard deviation
    assert "(first run builds the cache: 50.0)" in table
