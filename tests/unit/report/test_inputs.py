"""Every file the report reads is a regular file of bounded size: a FIFO or a device named as
(or swapped in for) a results.json, a --baseline or an --eval-json file is refused in one line
instead of hanging the report or reading until memory runs out."""

from __future__ import annotations

import contextlib
import os
import resource
import threading

import pytest

from srdistill.outputs import write_json
from tests.helpers.cli import assert_one_line_error, run_script

SECONDS_BEFORE_UNBLOCKING = 10


def _run(folder, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    tags = {"table": "mcad_tab3", "method": "kd", "scale": 4, "seed": seed}
    val = {"val/Set5/psnr_y": 30.0, "val/Set5/ssim_y": 0.9}
    write_json(folder / "results.json", {"val": val, "steps": 1, "tags": tags})
    return folder


def _unblock(fifo) -> None:
    """Open and close the FIFO's write end: a reader stuck in open() or read() gets EOF."""
    with contextlib.suppress(OSError):  # no reader: nothing is stuck
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@contextlib.contextmanager
def _never_stuck_on(fifo):
    """If the report blocks on ``fifo``, free it after a while, so that a wrong report fails
    (it then reads an empty file) instead of hanging the test suite."""
    timer = threading.Timer(SECONDS_BEFORE_UNBLOCKING, _unblock, [fifo])
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextlib.contextmanager
def _memory_capped(extra_bytes=2**30):
    """A report reading /dev/zero to the end stops with MemoryError, not by exhausting the
    machine."""
    with open("/proc/self/status") as status:
        (line,) = [line for line in status if line.startswith("VmSize:")]
    now = int(line.split()[1]) * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (now + extra_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _report(*args):
    return run_script("-m", "srdistill.report", *args)


def test_a_fifo_as_results_json_is_refused_without_blocking(tmp_path):
    (tmp_path / "s" / "run").mkdir(parents=True)
    fifo = tmp_path / "s" / "run" / "results.json"
    os.mkfifo(fifo)
    with _never_stuck_on(fifo):
        proc = _report(tmp_path / "s")
    assert_one_line_error(proc, f"{fifo}: not a regular file")


@pytest.mark.parametrize("option", ["--baseline", "--eval-json"])
def test_a_fifo_as_a_scores_file_is_refused_naming_the_option(tmp_path, option):
    run = _run(tmp_path / "s" / "run")
    fifo = run / "eval.json" if option == "--eval-json" else tmp_path / "base.json"
    os.mkfifo(fifo)
    value = fifo.name if option == "--eval-json" else fifo
    with _never_stuck_on(fifo):
        proc = _report(tmp_path / "s", option, value)
    assert_one_line_error(proc, option, f"{fifo}: not a regular file")


def test_a_results_json_linked_to_dev_zero_is_refused_before_reading(tmp_path):
    (tmp_path / "s" / "run").mkdir(parents=True)
    os.symlink("/dev/zero", tmp_path / "s" / "run" / "results.json")
    with _memory_capped():
        proc = _report(tmp_path / "s")
    assert_one_line_error(proc, str(tmp_path / "s" / "run" / "results.json"), "not a regular")


def test_a_results_json_over_the_size_limit_is_refused_unread(tmp_path):
    from srdistill.report.inputs import INPUT_LIMIT

    (tmp_path / "s" / "run").mkdir(parents=True)
    huge = tmp_path / "s" / "run" / "results.json"
    with open(huge, "wb") as file:
        file.truncate(INPUT_LIMIT + 1)  # sparse: no disk used
    assert_one_line_error(_report(tmp_path / "s"), str(huge), f"larger than {INPUT_LIMIT} bytes")


def test_a_file_longer_than_its_stated_size_is_read_no_further_than_the_limit(tmp_path):
    from srdistill.report.inputs import ReportError, read_input

    # /proc files state a size of 0 and hold more: only the bounded read catches them
    os.symlink("/proc/self/status", tmp_path / "results.json")
    assert os.stat(tmp_path / "results.json").st_size == 0
    with pytest.raises(ReportError, match="larger than 64 bytes"):
        read_input(tmp_path / "results.json", limit=64)
    assert len(read_input(tmp_path / "results.json", limit=2**20)) > 64


def test_an_integer_python_will_not_convert_is_one_line_naming_the_file(tmp_path):
    path = _run(tmp_path / "s" / "run") / "results.json"
    path.write_text(path.read_text().replace('"steps": 1', '"steps": 1' + "0" * 5000))
    assert_one_line_error(_report(tmp_path / "s"), str(path), "not a results file")


def test_a_dangling_results_json_link_is_one_line_naming_it(tmp_path):
    (tmp_path / "s" / "run").mkdir(parents=True)
    link = tmp_path / "s" / "run" / "results.json"
    link.symlink_to(tmp_path / "gone.json")
    assert_one_line_error(_report(tmp_path / "s"), str(link), "cannot be read")
