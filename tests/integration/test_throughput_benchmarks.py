"""``benchmarks/data_throughput.py`` and ``benchmarks/eval_throughput.py`` run end to end on
tiny inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.cli import run_script
from tests.helpers.images import write_png


def noise(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_data_benchmark_reports_every_setting(tmp_path):
    for i in range(3):
        write_png(tmp_path / "hr" / f"{i}.png", noise((40, 44, 3), i))
    out = tmp_path / "data.json"
    proc = run_script(
        "benchmarks/data_throughput.py",
        *("--root", str(tmp_path / "hr"), "--images", "2", "--patch", "4", "--batch", "4"),
        *("--repeat", "4", "--workers", "1", "--repeats", "1", "--json", str(out)),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert (result["images"], result["samples_per_epoch"], result["scale"]) == (2, 8, 4)
    settings = {(row["mode"], row["workers"]): row for row in result["settings"]}
    assert set(settings) == {(m, w) for m in ("png", "npy", "memory", "npy_teacher") for w in (1,)}
    for (_, workers), row in settings.items():
        assert row["samples_per_s_min"] <= row["samples_per_s"] <= row["samples_per_s_max"]
        assert row["samples_per_s"] > 0 and len(row["runs"]) == 1
        per_worker = pytest.approx(row["samples_per_s"] / workers, rel=0.01)
        assert row["samples_per_s_per_worker"] == per_worker
    # the sources are left as they were
    assert sorted(p.name for p in (tmp_path / "hr").iterdir()) == ["0.png", "1.png", "2.png"]


@pytest.mark.slow
def test_eval_benchmark_tiled_equals_whole_image(tmp_path):
    for i in range(2):
        write_png(tmp_path / "Urban100" / "HR" / f"img{i}.png", noise((48, 40, 3), i))
    out = tmp_path / "eval.json"
    proc = run_script(
        "benchmarks/eval_throughput.py",
        *("--root", str(tmp_path), "--limit", "1", "--tiles", "none", "4"),
        *("--dtypes", "float32", "--threads", "1", "--json", str(out)),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert (result["set"], result["scale"], result["model"]) == ("Urban100", 4, "span_ch26")
    whole, tiled = result["settings"]
    assert (whole["tile"], tiled["tile"]) == (None, 4)
    for row in (whole, tiled):
        assert row["images"] == 1 and row["dtype"] == "float32"
        # images / seconds, up to the rounding of both to 3 decimals
        rounding = row["images_per_s"] * 0.0005 + row["seconds"] * 0.0005
        assert abs(row["images_per_s"] * row["seconds"] - row["images"]) <= rounding + 1e-9
        parts = row["read_pair_s"] + row["forward_s"] + row["metrics_and_rest_s"]
        assert parts == pytest.approx(row["seconds"], abs=0.03)
        assert row["peak_rss_mb"] >= row["peak_growth_mb"] >= 0
    # overlap 32 covers SPAN's receptive field: tiles reproduce the whole-image output
    assert (tiled["psnr_y"], tiled["ssim_y"]) == (whole["psnr_y"], whole["ssim_y"])
