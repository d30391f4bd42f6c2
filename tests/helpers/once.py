"""Expensive test inputs (a trained run) built once per test session, even under pytest-xdist.

Each xdist worker is a process of its own, so a session fixture would train its run once per
worker. ``build_once`` builds into a folder that every worker of one pytest run sees, under a file
lock: the first worker builds, the others wait and read the same folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock


def session_root(basetemp: Path) -> Path:
    """The folder shared by every worker of this pytest run (new for each run)."""
    # under xdist each worker's basetemp is <run folder>/popen-gwN; without it, the run folder
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


def build_once(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """``build(folder)`` unless this run built ``name`` already; the built folder (its name
    keeps no character that a Hydra override would read, such as `=`)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]
    folder = root / "built_once" / f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{folder}.lock"):
        done, failed = folder / ".complete", Path(f"{folder}.failed")
        if failed.exists():  # every test that needs it fails at once, not after a rebuild each
            raise RuntimeError(
                f"building {name!r} failed earlier in this run: {failed.read_text()}"
            )
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                build(folder)
            except BaseException as err:
                failed.write_text(str(err)[-3000:] or type(err).__name__)
                raise
            done.touch()
    return folder
