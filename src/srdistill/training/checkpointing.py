"""Run checkpoints that can be trusted: written atomically, ``last.ckpt`` always the latest state.

Lightning's ``ModelCheckpoint(save_last=True)`` refreshes ``last`` only when it also saves a
top-k checkpoint, so after a validation that is not a new best ``last.ckpt`` lags behind the run.
:class:`LastCheckpoint` writes it on its own schedule instead: every N steps, at the end of every
``fit`` (each training stage and the run) and when SIGTERM stops training.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import NoReturn

import torch
from lightning import Callback
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from srdistill.models.run_student import BUILD_RECORD_KEY
from srdistill.outputs import write_atomic
from srdistill.training.rng import capture_rng_state, restore_rng_state

# 128 + SIGTERM, what a shell reports for a process the signal ended
TERMINATED_EXIT_CODE = 143
_TEMP_SUFFIX = ".tmp"


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`srdistill.outputs.write_atomic`: a kill at any moment
    leaves either the previous file or the complete new one at ``path``; the temporary file's
    name (``.<name>.*.tmp``) never passes for a checkpoint."""
    write_atomic(path, lambda f: torch.save(obj, f), "checkpoint")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Every ``trainer.save_checkpoint`` (best, last, stage ends, SLURM's hpc) made atomic."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_torch_save(checkpoint, path)


def weights_are_finite(pl_module) -> bool:
    tensors = (t for t in pl_module.state_dict().values() if t.is_floating_point())
    return all(bool(torch.isfinite(t).all()) for t in tensors)


class LastCheckpoint(Callback):
    """``<dirpath>/last.ckpt``: every ``every_n_steps``, at the end of each ``fit`` and on SIGTERM.

    It also makes the trainer's checkpoint writes atomic (when the trainer uses Lightning's
    plain writer), so a kill during a write never leaves a truncated ``best`` or ``last``.
    Weights with a NaN or infinity are never written: ``last.ckpt`` keeps the previous state.
    """

    def __init__(self, dirpath: str | os.PathLike, every_n_steps: int, filename: str = "last.ckpt"):
        if every_n_steps < 1:
            raise ValueError(f"callbacks.last.every_n_steps must be positive, got {every_n_steps}")
        self.path = Path(dirpath) / filename
        self.every_n_steps = every_n_steps
        self._saved_step: int | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        if trainer.is_global_zero and self.path.parent.is_dir():
            # left by a kill during a write; never read, so only clutter
            for stale in self.path.parent.glob(f".*{_TEMP_SUFFIX}"):
                stale.unlink(missing_ok=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.every_n_steps == 0 and step != self._saved_step:
            self.save(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer, pl_module)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # a step that raised may have left the state half-updated; a signal arrives between steps
        if isinstance(exception, SIGTERMException | KeyboardInterrupt):
            self.save(trainer, pl_module)

    def save(self, trainer, pl_module) -> None:
        if not weights_are_finite(pl_module):
            warnings.warn(
                f"step {trainer.global_step}: weights are not finite, {self.path} not updated",
                stacklevel=2,
            )
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # optimisers too, for resuming
        self._saved_step = trainer.global_step


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that never keeps a NaN/infinite metric as the best one.

    Lightning ranks a NaN as the worst score but still saves it while fewer than ``save_top_k``
    checkpoints exist, so a first validation of diverged weights would become ``best``.
    """

    def check_monitor_top_k(self, trainer, current: torch.Tensor | None = None) -> bool:
        if current is not None and not bool(torch.isfinite(torch.as_tensor(current))):
            return False
        return super().check_monitor_top_k(trainer, current)


def last_saved_step(path: Path) -> int | None:
    if not path.is_file():
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return int(checkpoint.get("global_step", 0))


def exit_terminated(last: Path) -> NoReturn:
    """One line naming the checkpoint to resume from, and a non-zero exit for the scheduler."""
    step = last_saved_step(last)
    if step is None:
        message = "terminated by SIGTERM before any checkpoint was written; start the run again"
    else:
        message = f"terminated by SIGTERM at step {step}; resume with ckpt_path={last}"
    if "SLURM_JOB_ID" in os.environ:
        message += " (SLURM requeues the job when auto-requeue is on)"
    print(f"error: {message}", file=sys.stderr)
    sys.exit(TERMINATED_EXIT_CODE)


def run_records(module) -> dict:
    """What a run checkpoint holds beside the weights: the teacher's identity (never its
    weights), the random states (an exact resume) and what rebuilds the deployed student."""
    records = {
        "teacher": dict(module.teacher_identity),
        "rng_states": capture_rng_state(),
        BUILD_RECORD_KEY: dict(module.build_record),
    }
    if module.pretrained_student is not None:
        records["pretrained_student"] = dict(module.pretrained_student)
    if module.balance.targets:
        records["balance"] = module.balance.state()
    return records


def restore_run_records(module, checkpoint: dict) -> None:
    if "rng_states" in checkpoint:
        restore_rng_state(checkpoint["rng_states"])
    if "balance" in checkpoint:
        module.balance.restore(checkpoint["balance"])
    else:
        module.balance.check_fresh_start(checkpoint)
