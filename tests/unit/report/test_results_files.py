"""srdistill-report reads every results.json train.py can write and refuses anything else in
one line: null metrics and runs scored on different benchmarks are blank cells explained below
the table; files that are not strict JSON, or hold the wrong types, name the file."""

from __future__ import annotations

import json
import os

import pytest

from srdistill.outputs import write_json
from tests.helpers.cli import assert_one_line_error, run_script


def _val(sets: dict[str, float]) -> dict:
    val = {}
    for name, psnr in sets.items():
        val |= {f"val/{name}/psnr_y": psnr, f"val/{name}/ssim_y": 0.9}
    return val


def _write_run(folder, sets: dict[str, float], method="scratch", seed=0, **extra):
    """A results.json as train.py writes it (write_json: a non-finite metric becomes null)."""
    tags = {"table": "mcad_tab3", "method": method, "scale": 4, "seed": seed}
    write_json(folder / "results.json", {"val": _val(sets), "steps": 4, "tags": tags, **extra})
    return folder


def _report(*args):
    return run_script("-m", "srdistill.report", *args)


def _table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def test_a_diverged_run_is_a_blank_cell_with_a_footnote_naming_it(tmp_path):
    _write_run(tmp_path / "s" / "ok", {"Set5": 30.0, "Urban100": 25.0})
    diverged = _write_run(tmp_path / "s" / "nan", {"Set5": float("nan"), "Urban100": 25.2}, seed=1)
    assert json.loads((diverged / "results.json").read_text())["val"]["val/Set5/psnr_y"] is None
    proc = _report(tmp_path / "s", "--group", "method")
    assert proc.returncode == 0, proc.stderr
    (row,) = _table_rows(proc.stdout)
    assert row[:3] == ["scratch", "2", "4"] and row[3] == ""  # Set5: blank, not a mean of one
    assert row[4] == "25.100 +- 0.141 / 0.9000"
    (note,) = [line for line in proc.stdout.splitlines() if line.startswith("blank cells")]
    assert "null" in note and str(diverged) in note and str(tmp_path / "s" / "ok") not in note


def test_paper_mode_leaves_a_diverged_mean_blank_in_every_file(tmp_path):
    _write_run(tmp_path / "s" / "ok", {"Set5": 30.0})
    _write_run(tmp_path / "s" / "nan", {"Set5": float("inf")}, seed=1)
    proc = _report(tmp_path / "s", "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "o" / "report.md").read_text()
    ours, paper, diff = _table_rows(md)[0][2:5]
    assert (ours, paper, diff) == ("", "32.29", "")
    assert "blank cells: no finite number" in md
    assert "% blank cells: no finite number" in (tmp_path / "o" / "report.tex").read_text()
    csv_line = (tmp_path / "o" / "report.csv").read_text().splitlines()[1]
    assert csv_line == "4,scratch,Scratch,2,Set5,psnr,,,32.29,"


@pytest.mark.parametrize("mode", [[], ["--paper", "mcad_tab3"]])
def test_runs_scored_on_different_benchmarks_get_blank_cells_for_the_missing_ones(tmp_path, mode):
    only_set5 = _write_run(tmp_path / "s" / "a", {"Set5": 30.0}, method="scratch")
    _write_run(tmp_path / "s" / "b", {"Urban100": 25.0}, method="kd")
    proc = _report(tmp_path / "s", "--group", "method", *mode)
    assert proc.returncode == 0, proc.stderr
    rows = _table_rows(proc.stdout)
    assert len(rows) == 2 and all(len(row) == len(rows[0]) for row in rows)
    assert sum(cell == "" for row in rows for cell in row) >= 2
    (note,) = [line for line in proc.stdout.splitlines() if line.startswith("blank cells")]
    assert "not scored" in note and str(only_set5) in note


def test_a_set_name_with_a_slash_is_a_column_and_never_a_path(tmp_path):
    _write_run(tmp_path / "s" / "a", {"DIV2K/valid": 30.0, "../../escape": 29.0})
    proc = _report(tmp_path / "s")
    assert proc.returncode == 0, proc.stderr
    assert "| DIV2K/valid PSNR / SSIM |" in proc.stdout and "30.000 +- 0.000" in proc.stdout
    proc = _report(tmp_path / "s", "--out", tmp_path / "o", "--paper", "mcad_tab3")
    assert proc.returncode == 0, proc.stderr
    assert "DIV2K/valid PSNR" in (tmp_path / "o" / "report.md").read_text()
    made = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")}
    assert made - {"s", "s/a", "s/a/results.json"} <= {
        "o",
        *(f"o/{name}" for name in ("report.md", "report.tex", "report.csv", "tradeoff.png")),
        "o/tradeoff_flops.png",
    }


DEEP = b'{"val": {}, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"val": {"val/Set5/psnr_y": "\xff"}}', "not UTF-8"),
        (b'{"val": {"val/Set5/psnr_y": NaN, "val/Set5/ssim_y": 0.9}}', "NaN"),
        (b'{"val": {"val/Set5/psnr_y": Infinity}}', "Infinity"),
        (b'{"val": {"val/Set5/psnr_y": -Infinity}}', "-Infinity"),
        (b'{"val": {"val/Set5/psnr_y": 1e999}}', "1e999"),
        (DEEP, "nested too deeply"),
        (b'{"val": {}, "steps": {"a": 1}}', "'steps' must be a whole number"),
        (b'{"val": {}, "steps": "4"}', "'steps' must be a whole number"),
        (b'{"val": {}, "tags": {"table": {"x": 1}}}', "'tags' must be an object"),
        (b'{"val": {}, "comparison": {"student": {"Set5": 30}}}', "'comparison'"),
        (b'{"val": {}, "grad_share": {"history": [{"c/ratio": "x"}]}}', "'grad_share'"),
        (b'{"val": {}, "weights": {"rec": "1"}}', "'weights' must map"),
        (b'{"val": {}, "balance": {"target": "1", "steps": 2, "weights": null}}', "'balance'"),
        (b'{"val": {}, "balance": {"target": 1, "steps": -2, "weights": null}}', "'balance'"),
        (b'{"val": {}, "balance": {"target": 1, "steps": 2, "weights": [1]}}', "'balance'"),
    ],
)
def test_a_file_train_py_cannot_write_is_refused_in_one_line_naming_it(tmp_path, content, needle):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_bytes(content)
    assert_one_line_error(_report(tmp_path), str(tmp_path / "run" / "results.json"), needle)


def test_a_baseline_file_that_is_not_eval_output_is_one_line_naming_it(tmp_path):
    _write_run(tmp_path / "s" / "a", {"Set5": 30.0})
    (tmp_path / "base.json").write_text('{"Set5": 28.0}')
    proc = _report(tmp_path / "s", "--baseline", tmp_path / "base.json")
    assert_one_line_error(proc, "--baseline", str(tmp_path / "base.json"))


def test_a_baseline_without_a_set_leaves_its_gain_blank(tmp_path):
    _write_run(tmp_path / "s" / "a", {"Set5": 30.0, "Urban100": 25.0})
    (tmp_path / "base.json").write_text('{"Set5": {"psnr": 28.0, "ssim": 0.8}}')
    proc = _report(tmp_path / "s", "--baseline", tmp_path / "base.json")
    assert proc.returncode == 0, proc.stderr
    gain = [row for row in _table_rows(proc.stdout) if row[0].startswith("gain")][0]
    assert gain[3:] == ["+2.000", ""]


def test_a_symlinked_run_folder_is_read(tmp_path):
    _write_run(tmp_path / "s" / "here", {"Set5": 30.0})
    elsewhere = _write_run(tmp_path / "elsewhere" / "run", {"Set5": 31.0}, seed=1)
    os.symlink(elsewhere, tmp_path / "s" / "linked")
    proc = _report(tmp_path / "s", "--group", "method")
    assert proc.returncode == 0, proc.stderr
    assert _table_rows(proc.stdout)[0][:2] == ["scratch", "2"]


def test_a_run_reached_twice_by_links_counts_once_with_one_warning(tmp_path):
    run = _write_run(tmp_path / "s" / "run", {"Set5": 30.0})
    os.symlink(run, tmp_path / "s" / "again")
    os.symlink(tmp_path / "s", tmp_path / "s" / "run" / "loop")  # a link to a folder above
    proc = _report(tmp_path / "s", "--group", "method")
    assert proc.returncode == 0, proc.stderr
    assert _table_rows(proc.stdout)[0][:2] == ["scratch", "1"]
    warnings = proc.stderr.strip().splitlines()
    assert len(warnings) == 2  # the second link to the run, and the loop
    assert all(line.startswith("warning: ") and "skipped" in line for line in warnings)


def _train_py_results(psnr: float) -> dict:
    """Every key train.py writes, a non-finite value in each place one can appear."""
    scores = {"Set5": {"psnr": psnr, "ssim": 0.9, "psnr_rgb": 29.0, "images": 5, "seconds": 1.0}}
    history = [{"step": 0, "kd/ratio": float("nan"), "kd/cos": 0.5}]
    arm = {"val": _val({"Set5": psnr}), "steps": 4, "config_hash": "abc", "wall_time_s": 1.0}
    arm |= {"teacher": {"arch": "edsr", "sha256": None}, "code": {"commit": None}}
    tags = {"table": "mcad_tab3", "method": "kd", "scale": 4, "seed": 0, "notes": ["a", "b"]}
    return arm | {
        "tags": tags,
        "params": 1000,
        "flops_g": None,
        "grad_share": {"every": 1, "history": history, "summary": {}},
        "without_teacher": dict(arm),
        "comparison": {"student": scores, "student without teacher": scores, "teacher": {}},
    }


@pytest.mark.parametrize(
    "mode",
    [[], ["--final-table"], ["--grad-share", "kd"], ["--deployed"], ["--paper", "mcad_tab3"]],
)
def test_every_mode_reads_what_train_py_writes_with_its_nulls(tmp_path, mode):
    write_json(tmp_path / "s" / "a" / "results.json", _train_py_results(float("nan")))
    write_json(tmp_path / "s" / "b" / "results.json", _train_py_results(30.0))
    proc = _report(tmp_path / "s", *mode)
    assert proc.returncode == 0, proc.stderr
    assert "blank cells: no finite number" in proc.stdout and "nan" not in proc.stdout


def test_a_run_without_steps_has_a_blank_steps_cell(tmp_path):
    write_json(tmp_path / "s" / "a" / "results.json", {"val": _val({"Set5": 30.0})})
    proc = _report(tmp_path / "s")
    assert proc.returncode == 0, proc.stderr
    assert _table_rows(proc.stdout) == [["?", "1", "", "30.000 +- 0.000 / 0.9000"]]


@pytest.mark.parametrize("second", ["s", "s/kd"])
def test_a_run_under_two_of_the_folders_given_counts_once_with_one_warning(tmp_path, second):
    _write_run(tmp_path / "s" / "kd" / "0", {"Set5": 30.0}, seed=0)
    _write_run(tmp_path / "s" / "kd" / "1", {"Set5": 31.0}, seed=1)
    proc = _report(tmp_path / "s", tmp_path / second, "--group", "method")
    assert proc.returncode == 0, proc.stderr
    assert _table_rows(proc.stdout)[0][:2] == ["scratch", "2"]
    (warning,) = proc.stderr.strip().splitlines()
    assert (
        warning.startswith(f"warning: {tmp_path / second}: skipped ") and "already read" in warning
    )


def test_a_sweep_after_a_folder_inside_it_skips_only_the_runs_already_read(tmp_path):
    _write_run(tmp_path / "s" / "kd" / "0", {"Set5": 30.0}, seed=0)
    _write_run(tmp_path / "s" / "scratch" / "0", {"Set5": 29.0}, seed=1)
    proc = _report(tmp_path / "s" / "kd", tmp_path / "s", "--group", "seed")
    assert proc.returncode == 0, proc.stderr
    assert sorted(row[:2] for row in _table_rows(proc.stdout)) == [["0", "1"], ["1", "1"]]
    (warning,) = proc.stderr.strip().splitlines()
    assert str(tmp_path / "s" / "kd" / "0") in warning and "scratch" not in warning


@pytest.mark.parametrize("scale", ["\u00b2", "\u0664", "4.0", True])
def test_a_scale_tag_int_cannot_read_is_refused_in_one_line_naming_the_file(tmp_path, scale):
    run = _write_run(tmp_path / "s" / "a", {"Set5": 30.0})
    result = json.loads((run / "results.json").read_text())
    result["tags"]["scale"] = scale
    write_json(run / "results.json", result)
    proc = _report(tmp_path / "s", "--paper", "mcad_tab3")
    assert_one_line_error(proc, str(run / "results.json"), "tags.scale must be a whole number")


def test_a_scale_override_int_cannot_read_is_refused_in_one_line_naming_the_file(tmp_path):
    run = tmp_path / "s" / "a"
    write_json(run / "results.json", {"val": _val({"Set5": 30.0})})
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("- loss=kd\n- scale=\u00b2\n")
    proc = _report(tmp_path / "s", "--paper", "mcad_tab3")
    assert_one_line_error(proc, str(run / ".hydra" / "overrides.yaml"), "scale must be a whole")
