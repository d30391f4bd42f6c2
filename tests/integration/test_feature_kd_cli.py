"""Every feature-KD baseline config trains through the real CLI (experiment=smoke, 2 steps)."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.shared import REPO_ROOT

# loss config -> its feature term; rkd compares images within a batch, so it needs three
FEATURE_LOSSES = {
    "fitnet": ("fit", []),
    "at": ("at", []),
    "rkd": ("rkd", ["batch_size=3"]),
    "fakd": ("sa", []),
}


@pytest.mark.parametrize("loss", sorted(FEATURE_LOSSES))
def test_feature_kd_config_trains_two_steps(tmp_path, loss):
    term, extra = FEATURE_LOSSES[loss]
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "experiment=smoke",
            f"loss={loss}",
            "trainer.max_steps=2",
            f"hydra.run.dir={tmp_path}",
            *extra,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 2
    header = next((tmp_path / "csv").rglob("metrics.csv")).read_text().splitlines()[0]
    assert f"train/loss/{term}" in header


def test_rkd_with_two_images_per_batch_is_one_line(tmp_path):
    proc = run_script("train.py", "experiment=smoke", "loss=rkd", f"hydra.run.dir={tmp_path}")
    assert_one_line_error(proc, "batch_size=2", "at least 3")
