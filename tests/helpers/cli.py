"""Running the root entry points as a user would, in a subprocess."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.shared import REPO_ROOT


def run_script(script: str, *overrides: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, script, *overrides],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
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
