"""Progress as log lines when the output goes to a file (CI, SLURM, nohup, ``> run.log``).

A progress bar redraws itself many times a second; in a file every redraw stays, and a short CPU
run writes hundreds of kilobytes of them. Where stdout (the bar's stream) is not a terminal,
``TextProgress`` takes the progress bar's place: one line every ``every_n_steps`` training steps

    step 100/400 | loss total=0.02131 rec=0.01502 kd=0.006292 | 1.23 it/s | ETA 0:04:04

and one line per validation with its metrics, through the ``logging`` module (Hydra's job
logging writes them to the console and to the run's log file). The rate counts training time
only, so the ETA leaves out the validations still to come.
"""

from __future__ import annotations

import logging
import sys
import time

from lightning.pytorch.callbacks import ProgressBar

from srdistill.counts import check_count

PROGRESS_HINT = "or null: a line after each validation only"

log = logging.getLogger(__name__)

# the metrics a validation logs: the deployed student's, and the trained network's when different
VALIDATION_PREFIXES = ("val/", "val_ema/", "val_trained/")


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an open interactive terminal (a replaced or closed stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_callbacks(enable_progress_bar: bool | None, every_n_steps: int | None) -> list:
    """``[TextProgress]`` when the trainer would draw its progress bar (on stdout) into something
    that is not a terminal; ``[]`` otherwise (the trainer then draws its own bar, or none)."""
    if enable_progress_bar is False or is_terminal(sys.stdout):
        return []
    return [TextProgress(every_n_steps)]


def format_number(value: float) -> str:
    return f"{value:.4g}"


def format_duration(seconds: float) -> str:
    """``H:MM:SS``, hours unbounded (``27:03:09``)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def step_line(step: int, max_steps: int | None, losses: dict[str, float], rate: float) -> str:
    """The line for a training step: progress, each loss term's value, rate and time left."""
    parts = [f"step {step}/{max_steps}" if max_steps else f"step {step}"]
    if losses:
        parts.append("loss " + " ".join(f"{k}={format_number(v)}" for k, v in losses.items()))
    if rate > 0:
        parts.append(f"{format_number(rate)} it/s")
        if max_steps:
            parts.append(f"ETA {format_duration(max(max_steps - step, 0) / rate)}")
    return " | ".join(parts)


def validation_line(step: int, metrics: dict[str, float]) -> str:
    values = " ".join(f"{k}={format_number(v)}" for k, v in metrics.items())
    return f"validation at step {step}: {values}" if values else f"validation at step {step}"


def loss_terms(metrics: dict) -> dict[str, float]:
    """``train/loss/<term>`` and the discriminator's ``train/loss_d``, by term name."""
    return {
        key.removeprefix("train/loss/").removeprefix("train/"): float(value)
        for key, value in metrics.items()
        if key.startswith(("train/loss/", "train/loss_d"))
    }


class TextProgress(ProgressBar):
    """The trainer's progress as log lines: every ``every_n_steps`` steps (null: none) and after
    each validation. A ``ProgressBar``, so the trainer draws no other bar beside it."""

    def __init__(self, every_n_steps: int | None = 50) -> None:
        super().__init__()
        if every_n_steps is not None:
            check_count("progress_every_n_steps", every_n_steps, hint=PROGRESS_HINT)
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._mark: tuple[int, float] | None = None  # step and training clock of the last line
        self._validation_start: float | None = None

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    @property
    def is_disabled(self) -> bool:
        return not self._enabled

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._mark = (trainer.global_step, time.monotonic())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        due = self.every_n_steps and step % self.every_n_steps == 0
        if not self._enabled or not due or self._mark is None or step == self._mark[0]:
            return
        now = time.monotonic()
        rate = (step - self._mark[0]) / max(now - self._mark[1], 1e-9)
        max_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        log.info(step_line(step, max_steps, loss_terms(trainer.callback_metrics), rate))
        self._mark = (step, now)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._validation_start = time.monotonic()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._mark is not None and self._validation_start is not None:
            # the validation's time is left out of the training rate
            paused = time.monotonic() - self._validation_start
            self._mark = (self._mark[0], self._mark[1] + paused)
        if not self._enabled or trainer.sanity_checking:
            return
        metrics = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith(VALIDATION_PREFIXES)
        }
        log.info(validation_line(trainer.global_step, metrics))
