"""srdistill-report says at which weights each group ran and how hard each term pulled."""

from __future__ import annotations

from srdistill.outputs import write_json
from tests.helpers.cli import run_script


def _run(folder, method, seed, weights, balance=None, ratios=()):
    tags = {"table": "mcad_tab3", "method": method, "scale": 4, "seed": seed}
    result = {"val": {"val/Set5/psnr_y": 30.0, "val/Set5/ssim_y": 0.9}, "steps": 10}
    result |= {"tags": tags, "weights": weights}
    if balance is not None:
        result["balance"] = balance
    if ratios:
        history = [{"step": step, "sa/ratio": r, "sa/cos": 0.1} for step, r in ratios]
        result["grad_share"] = {"every": 1, "history": history}
    folder.mkdir(parents=True)
    write_json(folder / "results.json", result)


def _rows(text: str, first: str) -> dict[str, list[str]]:
    start = text.index(first)
    lines = [line for line in text[start:].splitlines() if line.startswith("|")][2:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1:] for row in cells}


def test_configured_and_balanced_weights_and_the_shares_after_balancing(tmp_path):
    for seed in (0, 1):
        _run(tmp_path / f"fakd{seed}", "fakd", seed, {"rec": 1.0, "sa": 0.078},
             ratios=[(0, 30.0), (1, 40.0 + seed)])  # fmt: skip
        balance = {"target": {"sa": 1.0}, "steps": 2, "weights": {"sa": 0.002 * (seed + 1)}}
        _run(tmp_path / f"bal{seed}", "fakd_balanced", seed,
             {"rec": 1.0, "sa": 0.002 * (seed + 1)}, balance,
             ratios=[(0, 0.0), (1, 0.0), (2, 0.8), (3, 1.2 + seed)])  # fmt: skip
    proc = run_script("-m", "srdistill.report", str(tmp_path), "--group", "method")
    assert proc.returncode == 0, proc.stderr
    rows = _rows(proc.stdout, "Weights each group trained at")
    assert rows["fakd"] == ["2", "rec 1, sa 0.078", "configured", "sa 35"]  # of 30 40 30 41
    # balanced: the median and range of the seeds' weights; shares after step 2 (.8 1.2 .8 2.2)
    assert rows["fakd_balanced"] == [
        "2", "rec 1, sa 0.003 (0.002..0.004)", "balanced to share 1 over 2 steps", "sa 1",
    ]  # fmt: skip


def test_paper_mode_writes_the_weights_under_the_table(tmp_path):
    _run(tmp_path / "runs" / "a", "fakd", 0, {"rec": 1.0, "resp": 1.0, "sa": 0.078})
    out = tmp_path / "report"
    proc = run_script("-m", "srdistill.report", str(tmp_path / "runs"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = _rows((out / "report.md").read_text(), "Weights each group trained at")
    assert rows["fakd x4"] == ["1", "rec 1, resp 1, sa 0.078", "configured", "not logged"]


def test_results_without_weights_keep_the_old_report(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    write_json(folder / "results.json", {"val": {"val/Set5/psnr_y": 30.0}, "steps": 1})
    proc = run_script("-m", "srdistill.report", str(tmp_path), "--group", "folder")
    assert proc.returncode == 0 and "Weights each group" not in proc.stdout


def test_a_partial_map_and_an_unfinished_calibration_are_named(tmp_path):
    balance = {"target": {"resp": 1.0}, "steps": 10, "weights": {"resp": 0.5}}
    weights = {"rec": 3.0, "resp": 0.5, "cont": 0.05}
    _run(tmp_path / "a", "mcad", 0, weights, balance)
    unfinished = {"target": {"sa": 1.0}, "steps": 10, "weights": None}
    _run(tmp_path / "b", "fakd", 0, {"rec": 1.0, "sa": 0.0}, unfinished)
    proc = run_script("-m", "srdistill.report", str(tmp_path), "--group", "method")
    rows = _rows(proc.stdout, "Weights each group trained at")
    assert rows["mcad"][2] == "balanced to resp 1 over 10 steps"
    assert "calibration unfinished in 1 run(s)" in rows["fakd"][2]
