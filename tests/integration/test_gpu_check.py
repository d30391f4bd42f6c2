"""benchmarks/gpu_check.py --device cpu in a real process (as ``make gpu-check ARGS="--device
cpu"`` runs it): every check in the JSON with finite numbers and its parity inside tolerance."""

from __future__ import annotations

import json
import math

import pytest

from tests.helpers.cli import run_process

# about 30 s: a new process, three Trainer.fit runs per round and one per option
pytestmark = pytest.mark.slow

CHECKS = (
    "lightning_vs_plain", "online_vs_cached", "bf16_mixed", "teacher_autocast_bf16",
    "channels_last", "channels_last_bf16", "compile", "ddp_two_processes",
)  # fmt: skip
OPTIONS = CHECKS[2:-1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    proc = run_process("benchmarks/gpu_check.py", "--device", "cpu", "--json", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_every_check_has_finite_numbers_and_parity_inside_its_tolerance(run):
    checks = run[1]["checks"]
    assert tuple(checks) == CHECKS
    for name in CHECKS[:-1]:
        c = checks[name]
        assert math.isfinite(c["value"]) and c["value"] > 0, name
        assert 0 <= c["parity_max_abs_diff"] <= c["tolerance"], name
        assert c["passed"] is True, name


def test_the_plain_loop_and_the_cached_teacher_train_the_same_weights(run):
    # the same float32 operations in the same order on one CPU thread: bit for bit (the stated
    # tolerance, 1e-6, leaves room for a GPU's reordered sums)
    for name in ("lightning_vs_plain", "online_vs_cached"):
        assert run[1]["checks"][name]["tolerance"] == 1e-6
        assert run[1]["checks"][name]["parity_max_abs_diff"] == 0.0


def test_option_rows_compare_with_one_float32_reference(run):
    checks = run[1]["checks"]
    reference = {checks[name]["reference_ms"] for name in OPTIONS}
    assert len(reference) == 1
    for name in OPTIONS:
        c = checks[name]
        assert c["value"] == pytest.approx(c["reference_ms"] / c["step_ms"])
        assert c["parity_max_abs_diff"] == max(c["student_diff"], c["teacher_diff"])
    # the frozen teacher computes the same in bf16 whether the trainer or perf.teacher_autocast
    # asks for it
    assert checks["bf16_mixed"]["teacher_diff"] == checks["teacher_autocast_bf16"]["teacher_diff"]
    assert checks["bf16_mixed"]["teacher_diff"] > 0  # bf16 does change it


def test_ddp_is_skipped_with_its_reason_and_the_setup_names_the_compile_backend(run):
    result = run[1]
    assert result["checks"]["ddp_two_processes"]["passed"] is None
    assert "--device cpu" in result["checks"]["ddp_two_processes"]["skipped"]
    assert result["setup"]["compile_backend"] == "aot_eager"
    assert result["setup"]["device"] == "cpu" and result["setup"]["gpus"] == 0


def test_the_table_has_one_row_per_check(run):
    lines = run[0].splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("check "))
    rows = [line.split()[0] for line in lines[header + 1 : header + 1 + len(CHECKS)]]
    assert tuple(rows) == CHECKS
    assert all(line.endswith("pass") for line in lines[header + 1 : header + len(CHECKS)])
