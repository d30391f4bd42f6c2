"""The in-process runner the CLI tests use (tests/helpers/cli.py) answers as a real process does,
and leaves the test process as it found it."""

import logging
import os
import warnings

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


def loggers_state() -> dict:
    named = logging.Logger.manager.loggerDict.values()
    loggers = [logging.getLogger(), *(lg for lg in named if isinstance(lg, logging.Logger))]
    return {
        lg.name: (lg.handlers[:], [getattr(h, "stream", None) for h in lg.handlers], lg.level)
        for lg in loggers
    }


def test_environment_folder_logging_and_warnings_are_restored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    command = ("eval.py", "scale=0", f"hydra.run.dir={tmp_path / 'run'}")
    # the first run in a process imports modules that set up their loggers once (run alone,
    # torch.fx's handlers are replaced then); what must hold is that a run leaves the process
    # as it found it, so the state compared is the one between two runs
    run_script(*command)
    before, filters = loggers_state(), warnings.filters[:]
    proc = run_script(*command)
    assert_one_line_error(proc, "scale=0")
    assert os.getcwd() == str(tmp_path)
    assert "HYDRA_FULL_ERROR" not in os.environ  # the entry point sets it for itself
    after = loggers_state()
    assert {name: after[name] for name in before} == before
    assert warnings.filters == filters


def test_lightning_log_lines_reach_the_run_once(tmp_path):
    # Lightning's own handler holds the stream of the moment it was imported (the test
    # process's); runs drop it (cli/log_setup.py) and Hydra's console handler, which writes to
    # the run's stdout, prints each line once
    proc = run_script(
        "train.py",
        "experiment=smoke",
        "trainer.max_steps=1",
        "final_table=false",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = "`Trainer.fit` stopped: `max_steps=1` reached."
    assert (proc.stdout + proc.stderr).count(line) == 1
    assert line in (tmp_path / "train.log").read_text()


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
