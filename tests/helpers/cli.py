"""Running the entry points as a user would: in this process (fast) or in a real one.

``run_script`` runs a root script (``train.py``, ``eval.py``, ``scripts/...``) or a module
(``-m srdistill.cli.upscale``) exactly as its ``__main__`` block runs from a shell: the same argv,
the same Hydra composition, the same one-line errors and exit codes, read back as a
``CliResult`` with the fields of ``subprocess.CompletedProcess``. Only what is a property of a
process (a signal, the code a shell sees, DDP's worker processes, the interpreter's start-up)
needs ``run_process``; those tests live in the slow suite.

An in-process run sees what a fresh interpreter would (CPython's default warning filters, warnings
and log lines printed on its stdout/stderr, no hub folder set, no Hydra state) and leaves the test
process as it found it: environment, working folder, loggers, torch's global switches (determinism,
threads, matmul precision, default dtype, cuDNN benchmark, hub folder, compiled graphs) and
Hydra's singletons are restored afterwards. What it cannot show is what only a fresh interpreter
prints once (import-time warnings): a slow test runs the user-error cases in real processes too.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import runpy
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from tests.helpers.shared import REPO_ROOT


@dataclass
class CliResult:
    """What a finished command left: its exit code and everything it printed."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def run_script(script: str, *args: object, env: Mapping[str, str] | None = None) -> CliResult:
    """Run ``script`` (a path from the repository root, or ``-m module``) in this process."""
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with _isolated_run(env), _logging_to(out, err):
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            with _interpreter_warnings():
                code = _run_main(script, argv)
    return CliResult([script, *argv], code, out.getvalue(), err.getvalue())


def run_process(
    script: str, *args: object, env: Mapping[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run ``script`` in a new Python process, for properties that belong to a process."""
    command = [sys.executable, *(["-m", args[0]] if script == "-m" else [script])]
    command += [str(a) for a in (args[1:] if script == "-m" else args)]
    return subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _run_main(script: str, argv: list[str]) -> int:
    """The exit code ``python script argv...`` ends with; an escaping exception prints its
    traceback on stderr, as the interpreter would, and counts as exit code 1."""
    module = argv[0] if script == "-m" else None
    argv = argv[1:] if module else argv
    sys.argv = [module or str(REPO_ROOT / script), *argv]
    # `python -m` finds the module not yet imported; runpy warns on stderr when it is
    imported = sys.modules.pop(module, None) if module else None
    try:
        if module:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(str(REPO_ROOT / script), run_name="__main__")
    except SystemExit as exit_:
        return _exit_code(exit_.code)
    except Exception:  # noqa: BLE001 - reported the way the interpreter reports it
        traceback.print_exc()
        return 1
    finally:
        if imported is not None:
            sys.modules[module] = imported
    return 0


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


# a fresh interpreter's warning filters (CPython's defaults, no -W option)
_DEFAULT_FILTERS = (
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, ""),
    ("ignore", PendingDeprecationWarning, ""),
    ("ignore", ImportWarning, ""),
    ("ignore", ResourceWarning, ""),
)


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextlib.contextmanager
def _interpreter_warnings() -> Iterator[None]:
    """Warnings printed on stderr as a shell would see them, not recorded by pytest."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        for action, category, module in reversed(_DEFAULT_FILTERS):
            warnings.filterwarnings(action, category=category, module=module)
        warnings.showwarning = _print_warning
        yield


def _loggers() -> list[logging.Logger]:
    manager = logging.Logger.manager
    named = [lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    return [logging.getLogger(), *named]


def _stream_handlers() -> list[logging.StreamHandler]:
    handlers = {h for lg in _loggers() for h in lg.handlers}
    return [h for h in handlers if type(h) is logging.StreamHandler]


@contextlib.contextmanager
def _logging_to(out: io.StringIO, err: io.StringIO) -> Iterator[None]:
    """Log lines reach the run's captured stdout/stderr, as they reach a process's streams.

    A library that attaches a handler when imported (Lightning does) holds the stream of that
    moment: the test process's own. During the run such handlers write to the capture; after
    it, handlers made during the run write to the streams of the test process again."""
    streams = {id(sys.stdout): out, id(sys.stderr): err}
    outer = {id(out): sys.stdout, id(err): sys.stderr}
    saved = {lg: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in _loggers()}
    moved = [(h, h.stream) for h in _stream_handlers() if id(h.stream) in streams]
    files = [h for lg in saved for h in lg.handlers if isinstance(h, logging.FileHandler)]
    for handler, stream in moved:
        handler.setStream(streams[id(stream)])
    try:
        yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)
        for handler in _stream_handlers():
            if id(handler.stream) in outer:
                handler.setStream(outer[id(handler.stream)])
        for logger, (handlers, level, propagate, disabled) in saved.items():
            _restore_handlers(logger, handlers, level)
            logger.propagate, logger.disabled = propagate, disabled
        for handler in files:  # Hydra's logging set-up closes every handler (pytest's log file)
            if handler.stream is None:
                handler.stream = open(handler.baseFilename, "a", encoding=handler.encoding)  # noqa: SIM115


@contextlib.contextmanager
def _isolated_run(env: Mapping[str, str] | None) -> Iterator[None]:
    """Undo what an entry point changes in the process it runs in."""
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv[:]
    saved_torch = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_num_threads(),
        torch.get_float32_matmul_precision(),
        torch.get_default_dtype(),
        torch.backends.cudnn.benchmark,
        torch.hub._hub_dir,
    )
    # a user's shell has no HYDRA_FULL_ERROR (the entry point sets it for itself), and a fresh
    # process no hub folder set by code (torch.hub then reads TORCH_HOME), no Hydra state
    os.environ.pop("HYDRA_FULL_ERROR", None)
    os.environ.update(env or {})
    os.chdir(REPO_ROOT)
    torch.hub._hub_dir = None
    _reset_hydra()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        _restore_torch(*saved_torch)
        _reset_hydra()


def _restore_torch(deterministic, warn_only, threads, matmul, dtype, benchmark, hub_dir) -> None:
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision(matmul)
    torch.set_default_dtype(dtype)
    torch.backends.cudnn.benchmark = benchmark
    torch.hub._hub_dir = hub_dir
    if "torch._dynamo" in sys.modules:  # a later run compiles afresh, as a new process does
        torch._dynamo.reset()


def _restore_handlers(root: logging.Logger, handlers: list, level: int) -> None:
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()  # Hydra's log file in the run folder
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def _reset_hydra() -> None:
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None


def assert_one_line_error(proc, *needles: str) -> None:
    """Exit code 2 and a single ``error: ...`` line on stderr mentioning every needle."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def export_last_checkpoint(run_dir, out) -> None:
    """``export.py`` on a run's ``checkpoints/last.ckpt``, writing ``out``; asserts it worked."""
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    proc = run_script("export.py", f"ckpt={ckpt}", f"out={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
