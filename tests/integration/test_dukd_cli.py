"""loss=dukd trains through the real CLI (experiment=smoke, 2 steps), two-step and summed."""

import json

import pytest

from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.training import train


@pytest.mark.parametrize(
    "extra",
    [[], pytest.param(["loss.step_groups=null"], marks=pytest.mark.slow)],
    ids=["two_step", "summed"],
)
def test_dukd_trains_two_iterations(tmp_path, extra):
    train(tmp_path, "loss=dukd", "trainer.max_steps=2", *extra)
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 2
    metrics = next((tmp_path / "csv").rglob("metrics.csv")).read_text().splitlines()
    header = metrics[0].split(",")
    for term in ("rec", "resp", "zoom_in", "zoom_out", "zoom_out/rec", "zoom_out/kd"):
        assert f"train/loss/{term}" in header
    total = header.index("train/loss/total")
    logged = [row for row in metrics[1:] if row.split(",")[total]]
    assert len(logged) == 2  # two iterations ran, not two optimizer steps


def test_step_groups_missing_a_term_is_one_line(tmp_path):
    proc = run_script(
        "train.py",
        "experiment=smoke",
        "loss=dukd",
        "loss.step_groups=[[rec,resp],[zoom_in]]",
        f"hydra.run.dir={tmp_path}",
    )
    assert_one_line_error(proc, "loss.step_groups", "zoom_out")
