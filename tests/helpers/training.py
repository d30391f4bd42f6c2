"""``train.py experiment=smoke`` runs for tests: in this process, or in a real one where the
property tested belongs to a process (DDP workers, W&B's service, signals)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from tests.helpers.cli import CliResult, run_process, run_script

# the smoke runs that several tests read (through the ``smoke_run`` fixture, trained once per
# session); the kd run records gradient shares too, for tests/integration/test_grad_share_cli.py
SMOKE_RUNS = {
    "scratch": ("loss=scratch",),
    "kd": ("loss=kd", "module.grad_share_every=2"),
    "mcad": ("loss=mcad",),
}


def _smoke_args(run_dir: Path, overrides: tuple[str, ...]) -> list[str]:
    return ["experiment=smoke", f"hydra.run.dir={run_dir}", *overrides]


def _offline() -> dict[str, str]:
    return {"WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}


def train(run_dir: Path, *overrides: str) -> CliResult:
    """A smoke run in this process; asserts it ended with exit code 0."""
    proc = run_script("train.py", *_smoke_args(run_dir, overrides), env=_offline())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def train_process(run_dir: Path, *overrides: str, timeout: int = 600):
    """A smoke run in a new Python process; asserts it ended with exit code 0."""
    proc = run_process(
        "train.py", *_smoke_args(run_dir, overrides), env=_offline(), timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def student_state(checkpoint: Path) -> dict:
    """The trained tensors of a run checkpoint, without the validation metrics' state."""
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if not k.startswith("val_metrics")}
