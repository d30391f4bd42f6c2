"""The notebooks: stored without outputs, valid nbformat, and running top to bottom in a fresh
kernel (``make notebooks``) with the outputs each one is there to show."""

import os
import subprocess
import sys

import nbformat
import pytest

from tests.helpers.shared import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
# short schedules (the notebooks' environment parameters) keep each one under a minute or so
STEPS = 24
SHORT = {"SRDISTILL_NB_STEPS": str(STEPS), "SRDISTILL_NB_STUDENT_STEPS": str(STEPS)}
# what each notebook prints when it ran as intended (the table rows, the schedule it was given)
EXPECTED_TEXT = {
    "evaluate_and_compare.ipynb": [
        f"distilled for {STEPS} steps",
        "edsr_sample_student",
        "SampleVal         2",
    ],
    "distill_in_five_minutes.ipynb": [
        f"trainer.max_steps={STEPS}",
        "| bicubic | 1 |",
        "| teacher | 1 |",
        "| student without teacher | 1 |",
        "| student distilled | 1 |",
        "| gain of distillation | 1 |",
        f"{STEPS} steps; the student has 89,859 parameters",
    ],
    "results_tables.ipynb": [
        "4 runs under",
        "| kd | 2 | 4 |",
        "| scratch | 2 | 4 |",
        "| kd - scratch | 2 |",
        "| Vanilla-KD | 2 |",
        "report.csv, report.md, report.tex, tradeoff.png, tradeoff_flops.png",
    ],
}


def ids(path):
    return path.name


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_every_notebook_is_tested():
    assert {path.name for path in NOTEBOOKS} == set(EXPECTED_TEXT)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_is_valid_and_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    for cell in code_cells(notebook):
        assert cell.outputs == [], cell.source[:80]
        assert cell.execution_count is None, cell.source[:80]
    assert any("figure" in cell.metadata.get("tags", []) for cell in code_cells(notebook))


def execute(path, out_dir, tmp_path):
    env = {
        **os.environ,
        **SHORT,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "SRDISTILL_NB_OUT": str(tmp_path / "runs"),
        "TMPDIR": str(tmp_path),  # the notebooks' own temporary folders
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    command = [sys.executable, "scripts/run_notebooks.py", str(path), "--out", str(out_dir)]
    command += ["--timeout", "300"]
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return nbformat.read(out_dir / path.name, as_version=4)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_runs_and_shows_its_results(path, tmp_path):
    executed = execute(path, tmp_path / "executed", tmp_path)
    text = []
    for cell in code_cells(executed):
        assert cell.execution_count is not None, cell.source[:80]
        assert not [out for out in cell.outputs if out.output_type == "error"], cell.source[:80]
        kinds = {kind for out in cell.outputs for kind in out.get("data", {})}
        if "figure" in cell.metadata.get("tags", []):
            assert "image/png" in kinds, cell.source[:80]
        text += [out.text for out in cell.outputs if out.output_type == "stream"]
    printed = "".join(text)
    for needle in EXPECTED_TEXT[path.name]:
        assert needle in printed, needle
    # the stored notebook is untouched: the run was on a copy
    assert all(not cell.outputs for cell in code_cells(nbformat.read(path, as_version=4)))
