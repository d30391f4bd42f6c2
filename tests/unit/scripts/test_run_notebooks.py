"""scripts/run_notebooks.py: every notebook runs even when one fails or times out, the failures
are listed at the end; unreadable notebooks and an unusable --out are one line before any runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellTimeoutError

from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.shared import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    "run_notebooks", REPO_ROOT / "scripts" / "run_notebooks.py"
)
run_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_notebooks)


def write_notebook(path, *sources: str):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata.kernelspec = {"name": "python3", "display_name": "Python 3"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, path)
    return path


def test_a_timed_out_notebook_does_not_stop_the_later_ones(tmp_path, monkeypatch, capsys):
    slow = write_notebook(tmp_path / "a_slow.ipynb", "import time; time.sleep(60)")
    quick = write_notebook(tmp_path / "b_quick.ipynb", "print(1)")
    ran = []

    def execute(*args):
        path, out_dir = [arg for arg in args if isinstance(arg, Path)][:2]
        ran.append(path.name)
        if path.name == slow.name:  # what nbclient raises when a cell outlives --timeout
            raise CellTimeoutError("A cell timed out while it was being executed, after 1 s")
        return out_dir / path.name

    monkeypatch.setattr(run_notebooks, "execute", execute)
    code = run_notebooks.main([str(slow), str(quick), "--out", str(tmp_path / "out")])
    assert code == 1 and ran == [slow.name, quick.name]
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"error: {slow}: a cell ran longer than --timeout 600 s"


def test_a_failing_cell_is_listed_with_its_error(tmp_path, monkeypatch, capsys):
    from nbclient.exceptions import CellExecutionError

    broken = write_notebook(tmp_path / "broken.ipynb", "1 / 0")

    def execute(*args):
        raise CellExecutionError("Traceback ...", "ZeroDivisionError", "division by zero")

    monkeypatch.setattr(run_notebooks, "execute", execute)
    assert run_notebooks.main([str(broken), "--out", str(tmp_path / "out")]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"error: {broken}: a cell raised ZeroDivisionError: division by zero"


@pytest.mark.parametrize("text", ["not json\n", "{}", "[1, 2]"])
def test_a_file_that_is_no_notebook_is_one_line_before_any_runs(tmp_path, text):
    bad = tmp_path / "bad.ipynb"
    bad.write_text(text)
    good = write_notebook(tmp_path / "good.ipynb", "print(1)")
    proc = run_script("scripts/run_notebooks.py", good, bad, "--out", tmp_path / "out")
    assert_one_line_error(proc, str(bad), "not a readable notebook")
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "executed"
    blocker.write_text("a file where the folder goes")
    good = write_notebook(tmp_path / "good.ipynb", "print(1)")
    proc = run_script("scripts/run_notebooks.py", good, "--out", blocker)
    assert_one_line_error(proc, "--out", str(blocker))


def test_an_out_folder_holding_the_source_notebook_is_refused_and_the_source_kept(tmp_path):
    source = write_notebook(tmp_path / "x.ipynb", "print(1)")
    before = source.read_bytes()
    for out in (tmp_path, tmp_path / "link", tmp_path / "not_yet" / ".."):
        if out.name == "link":
            out.symlink_to(tmp_path)
        proc = run_script("scripts/run_notebooks.py", source, "--out", out)
        assert_one_line_error(proc, "--out", "is the input", str(source))
        assert source.read_bytes() == before


def test_two_notebooks_of_one_name_are_refused_before_either_runs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_notebook(tmp_path / "a" / "x.ipynb", "print(1)")
    second = write_notebook(tmp_path / "b" / "x.ipynb", "print(2)")
    proc = run_script("scripts/run_notebooks.py", first, second, "--out", tmp_path / "out")
    assert_one_line_error(proc, str(first), str(second), "different --out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("timeout", ["0", "-5"])
def test_a_timeout_that_would_switch_timeouts_off_is_refused(tmp_path, timeout):
    good = write_notebook(tmp_path / "good.ipynb", "print(1)")
    proc = run_script(
        "scripts/run_notebooks.py", good, "--out", tmp_path / "o", "--timeout", timeout
    )
    assert_one_line_error(proc, f"--timeout {timeout}", "at least 1")


@pytest.mark.slow  # starts two Jupyter kernels
def test_a_real_cell_timeout_leaves_the_later_notebooks_running(tmp_path):
    slow = write_notebook(tmp_path / "a_slow.ipynb", "import time; time.sleep(30)")
    quick = write_notebook(tmp_path / "b_quick.ipynb", "print('quick ran')")
    out = tmp_path / "out"
    proc = run_script("scripts/run_notebooks.py", slow, quick, "--out", out, "--timeout", "2")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].endswith("a cell ran longer than --timeout 2 s")
    executed = nbformat.read(out / quick.name, as_version=4)
    assert executed.cells[0].outputs[0].text == "quick ran\n"
    assert (out / slow.name).is_file()  # the executed copy is written on failure too
