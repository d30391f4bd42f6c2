"""benchmarks/train_step.py end to end on tiny networks: keys, ratios, the identical step."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers.cli import run_script

# about 20 s: five Trainer.fit runs per round, even on tiny networks
pytestmark = pytest.mark.slow

TINY = (
    "--steps", "2", "--warmup", "1", "--repeats", "2", "--check-steps", "2",
    "--batch", "2", "--patch", "12", "--scale", "4",
    "--teacher-width", "8", "--teacher-blocks", "2",
    "--student-width", "4", "--student-blocks", "2",
)  # fmt: skip
ARMS = (
    "plain", "mcad_online", "scratch", "mcad_cached", "kd_cached", "kd_cont_cached",
    "teacher_forward", "student_forward",
)  # fmt: skip


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "train_step.json"
    proc = run_script("benchmarks/train_step.py", *TINY, "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "where MCAD's online step goes" in proc.stdout
    return json.loads(out.read_text())


def test_every_arm_is_timed_and_the_ratios_are_those_of_the_medians(result):
    m = result["medians_ms"]
    assert set(m) == set(ARMS) and all(v > 0 for v in m.values())
    assert result["lightning_over_plain"] == pytest.approx(m["mcad_online"] / m["plain"])
    assert result["mcad_online_over_scratch"] == pytest.approx(m["mcad_online"] / m["scratch"])
    assert result["mcad_cached_over_scratch"] == pytest.approx(m["mcad_cached"] / m["scratch"])
    assert result["teacher_share"] == pytest.approx(m["teacher_forward"] / m["mcad_online"])
    removed = (m["mcad_online"] - m["mcad_cached"]) / m["teacher_forward"]
    assert result["cache_removed_share"] == pytest.approx(removed)
    for name in ("lightning_over_plain", "cache_removed_share"):
        s = result["ratio_spread"][name]
        assert s["min"] <= s["median"] <= s["max"]


def test_the_breakdown_adds_up_to_the_online_mcad_step(result):
    rows = result["breakdown"]
    assert sum(r["ms"] for r in rows) == pytest.approx(result["medians_ms"]["mcad_online"])
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)


def test_the_plain_loop_is_the_modules_step(result):
    # same init, seed and steps: the hand-written loop and Trainer.fit reach the same weights
    assert result["plain_vs_module_max_abs_diff"] <= 1e-6


def test_models_and_setup_are_recorded(result):
    models = result["models"]
    assert models["teacher"]["name"] == "EDSR 8ch x 2 blocks"
    # EDSR x4 with width 4, 2 blocks: hand-counted conv weights + biases
    convs = [(3, 4), (4, 4), (4, 4), (4, 4), (4, 4), (4, 4), (4, 16), (4, 16), (4, 3)]
    assert models["student"]["params"] == sum(9 * i * o + o for i, o in convs)
    setup = result["setup"]
    assert (setup["batch"], setup["lr_patch"], setup["hr_patch"]) == (2, 12, 48)
    assert setup["rounds"] == 2 and setup["device"] == "cpu"
    assert torch.__version__.startswith(setup["environment"]["torch"])
