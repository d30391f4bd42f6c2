"""The one way tests and benchmarks find the shared data and weights folder.

``SRDISTILL_SHARED`` names it; the default is ``../shared`` from the repository root. Tests that
need it skip with a clear reason where it is absent, so the suite passes for any user.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_root() -> Path:
    return Path(os.environ.get("SRDISTILL_SHARED", REPO_ROOT.parent / "shared")).resolve()


def shared_path(*parts: str) -> Path:
    return shared_root().joinpath(*parts)


def requires_shared(*parts: str):
    """Skip unless ``<shared>/<parts>`` exists; also tags the test with the ``shared`` marker."""
    path = shared_path(*parts)
    skip = pytest.mark.skipif(
        not path.exists(), reason=f"needs {path} (set SRDISTILL_SHARED to the shared data folder)"
    )

    def decorate(test):
        return pytest.mark.shared(skip(test))

    return decorate
