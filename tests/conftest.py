"""Common fixtures: a small real photo, deterministic seeds, isolated caches, shared runs.

torch and numpy are imported inside the functions: under pytest-xdist the controller process
loads this file too, and never needs them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from tests.helpers.once import build_once, session_root

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pytest_configure(config):
    """Under pytest-xdist each worker gets its share of the cores: on 2 cores two
    single-threaded workers run the fast suite in about half the time of one two-threaded
    process, where two-threaded workers are slower than none (docs/CONTRIBUTING.md). The
    controller sets the thread counts before it starts the workers, so that torch and numpy's
    BLAS read them when they load, and so do the processes the tests start."""
    workers = getattr(config.option, "numprocesses", None)
    if workers and getattr(config.option, "maxprocesses", None):
        workers = min(int(workers), int(config.option.maxprocesses))
    if workers and not os.environ.get("PYTEST_XDIST_WORKER"):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        for variable in THREAD_VARIABLES:
            os.environ.setdefault(variable, str(max(1, (cores or 1) // int(workers))))
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True)
def _seed_and_isolate(monkeypatch, tmp_path_factory):
    import random

    import numpy as np
    import torch

    random.seed(0)
    torch.manual_seed(0)
    np.random.seed(0)
    # Never write into the user's cache from tests.
    monkeypatch.setenv("SRDISTILL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def photo():
    """A real 8-bit RGB photo (scikit-image's 'chelsea', 300x451), cropped to 96x120."""
    import numpy as np
    from skimage import data

    return np.ascontiguousarray(data.chelsea()[100:196, 150:270])


@pytest.fixture(scope="session")
def built_once(tmp_path_factory):
    """``built_once(name, build)``: ``build(folder)`` run once per pytest run, shared by every
    xdist worker (tests/helpers/once.py); the folder, which tests only read."""
    root = session_root(tmp_path_factory.getbasetemp())
    return lambda name, build: build_once(root, name, build)


@pytest.fixture(scope="session")
def smoke_run(built_once):
    """``train.py experiment=smoke <overrides>`` trained once per test run for each distinct set
    of overrides: ``smoke_run("loss=kd")`` gives ``(run folder, CliResult)``. Tests only read
    what the run left; one that changes the folder trains its own run."""

    from tests.helpers.cli import CliResult
    from tests.helpers.training import train

    def build(folder: Path, overrides: tuple[str, ...]) -> None:
        proc = train(folder / "run", *overrides)
        (folder / "output.json").write_text(json.dumps(dataclasses.asdict(proc)))

    def trained(*overrides: str) -> tuple[Path, object]:
        folder = built_once(" ".join(overrides), lambda f: build(f, overrides))
        proc = CliResult(**json.loads((folder / "output.json").read_text()))
        return folder / "run", proc

    return trained
