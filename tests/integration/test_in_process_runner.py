"""The in-process runner the CLI tests use (tests/helpers/cli.py) answers as a real process does,
and leaves the test process as it found it."""

import logging
import os
import warnings

import pytest

from tests.helpers.cli import assert_one_line_error, run_process, run_script

# a mistyped option: train.py reports it before importing torch, so a real process is cheap
MISTYPED = ("train.py", "loss=foo")


def test_a_mistyped_option_reads_the_same_in_process_and_in_a_process():
    here, there = run_script(*MISTYPED), run_process(*MISTYPED)
    assert (here.returncode, here.stderr, here.stdout) == (
        there.returncode,
        there.stderr,
        there.stdout,
    )
    assert_one_line_error(here, "loss/foo")


@pytest.mark.slow  # the process imports torch and Lightning
def test_a_job_error_reads_the_same_in_process_and_in_a_process(tmp_path):
    args = ("train.py", "experiment=smoke", "scale=0", f"hydra.run.dir={tmp_path}")
    here, there = run_script(*args), run_process(*args)
    assert (here.returncode, here.stderr) == (there.returncode, there.stderr)
    assert_one_line_error(here, "scale=0")


def test_environment_folder_logging_and_warnings_are_restored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    handlers = logging.getLogger().handlers[:]
    filters = warnings.filters[:]
    proc = run_script("eval.py", "scale=0")
    assert_one_line_error(proc, "scale=0")
    assert os.getcwd() == str(tmp_path)
    assert "HYDRA_FULL_ERROR" not in os.environ  # the entry point sets it for itself
    assert logging.getLogger().handlers == handlers
    assert warnings.filters == filters


def test_an_escaping_exception_is_a_traceback_and_exit_code_1(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("raise RuntimeError('boom')\n")
    proc = run_script(str(script))
    assert proc.returncode == 1
    assert proc.stderr.startswith("Traceback") and "RuntimeError: boom" in proc.stderr


def test_warnings_reach_stderr_as_in_a_fresh_interpreter(tmp_path):
    script = tmp_path / "warn.py"
    script.write_text(
        "import warnings\nwarnings.warn('shown')\nwarnings.warn('hidden', DeprecationWarning, 2)\n"
    )
    proc = run_script(str(script))
    assert proc.returncode == 0
    assert "UserWarning: shown" in proc.stderr and "hidden" not in proc.stderr
