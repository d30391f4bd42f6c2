import io
import logging
import sys
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from srdistill.cli.builders import build_trainer
from srdistill.training import text_progress
from srdistill.training.text_progress import (
    TextProgress,
    format_duration,
    progress_callbacks,
    step_line,
    validation_line,
)

LOGGER = "srdistill.training.text_progress"


class Stream(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_step_line_shows_progress_each_term_rate_and_time_left():
    losses = {"total": 0.02131, "rec": 0.01502, "kd": 0.0062918}
    # 300 steps left at 1.25 it/s: 240 s
    assert step_line(100, 400, losses, 1.25) == (
        "step 100/400 | loss total=0.02131 rec=0.01502 kd=0.006292 | 1.25 it/s | ETA 0:04:00"
    )
    assert step_line(7, None, {}, 0.5) == "step 7 | 0.5 it/s"  # no max_steps: no ETA


def test_durations_count_hours_past_a_day():
    assert format_duration(27 * 3600 + 2 * 60 + 9) == "27:02:09"
    assert format_duration(59.6) == "0:01:00"


def test_validation_line_lists_the_metrics():
    line = validation_line(200, {"val/Set5/psnr_y": 31.23456, "val/Set5/ssim_y": 0.88123})
    assert line == "validation at step 200: val/Set5/psnr_y=31.23 val/Set5/ssim_y=0.8812"


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "10"])
def test_a_bad_step_count_names_the_option(bad):
    with pytest.raises(ValueError, match="progress_every_n_steps"):
        TextProgress(bad)


def test_lines_every_n_steps_and_the_rate_leaves_out_validation(monkeypatch, caplog):
    clock = [100.0]
    monkeypatch.setattr(text_progress.time, "monotonic", lambda: clock[0])
    metrics = {"train/loss/total": 0.5, "train/loss/rec": 0.25, "train/loss_d": 0.75, "loss": 0.5}
    trainer = SimpleNamespace(
        global_step=0, max_steps=10, callback_metrics=metrics, sanity_checking=False
    )
    progress = TextProgress(every_n_steps=2)
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress.on_train_start(trainer, None)
    for step in range(1, 7):
        clock[0] += 0.5  # 2 it/s
        trainer.global_step = step
        progress.on_train_batch_end(trainer, None, None, None, step - 1)
        if step == 4:
            progress.on_validation_start(trainer, None)
            clock[0] += 10.0
            metrics["val/S/psnr_y"] = 30.0
            progress.on_validation_end(trainer, None)
    terms = "loss total=0.5 rec=0.25 loss_d=0.75"
    assert messages(caplog) == [
        f"step 2/10 | {terms} | 2 it/s | ETA 0:00:04",
        f"step 4/10 | {terms} | 2 it/s | ETA 0:00:03",
        "validation at step 4: val/S/psnr_y=30",
        f"step 6/10 | {terms} | 2 it/s | ETA 0:00:02",
    ]


def test_no_lines_when_disabled_or_sanity_checking(caplog):
    trainer = SimpleNamespace(global_step=0, max_steps=4, callback_metrics={}, sanity_checking=True)
    progress = TextProgress(every_n_steps=1)
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress.on_validation_end(trainer, None)  # the sanity check's validation
    progress.on_train_start(trainer, None)
    progress.disable()  # what a rank other than 0 does
    trainer.global_step, trainer.sanity_checking = 1, False
    progress.on_train_batch_end(trainer, None, None, None, 0)
    progress.on_validation_end(trainer, None)
    assert messages(caplog) == []


class Logging(L.LightningModule):
    """Logs ``total`` = the step count before the step + 0.5 and a validation PSNR."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        self.log("train/loss/total", self.global_step + 0.5, on_step=True, on_epoch=False)
        self.log("train/loss/rec", 0.25, on_step=True, on_epoch=False)
        return (self.weight * batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        self.log("val/Tiny/psnr_y", 30.0 + self.global_step, on_epoch=True)
        self.log("other/value", 1.0, on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_fit_reports_the_values_of_the_step_it_names(tmp_path, caplog):
    data = DataLoader(TensorDataset(torch.ones(8, 1)), batch_size=1)
    trainer = L.Trainer(
        max_steps=4,
        val_check_interval=2,
        check_val_every_n_epoch=None,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        callbacks=[TextProgress(every_n_steps=2)],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    caplog.set_level(logging.INFO, logger=LOGGER)
    trainer.fit(Logging(), data, data)
    assert isinstance(trainer.progress_bar_callback, TextProgress)  # no bar beside it
    lines = [line.split(" | ")[:2] for line in messages(caplog)]
    assert lines == [
        ["step 2/4", "loss total=1.5 rec=0.25"],  # logged by the step from 1 to 2
        ["validation at step 2: val/Tiny/psnr_y=32"],
        ["step 4/4", "loss total=3.5 rec=0.25"],
        ["validation at step 4: val/Tiny/psnr_y=34"],
    ]


def trainer_config(enable_progress_bar: bool = True):
    return OmegaConf.create(
        {
            "trainer": {
                "_target_": "lightning.Trainer",
                "accelerator": "cpu",
                "enable_progress_bar": enable_progress_bar,
                "enable_model_summary": False,
            },
            "progress_every_n_steps": 7,
        }
    )


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "file"])
def test_the_bar_on_a_terminal_log_lines_otherwise(monkeypatch, terminal):
    monkeypatch.setattr(sys, "stdout", Stream(terminal))  # where Lightning draws its bar
    bar = build_trainer(trainer_config(), loggers=False).progress_bar_callback
    assert isinstance(bar, ProgressBar)
    assert isinstance(bar, TextProgress) != terminal
    if not terminal:
        assert bar.every_n_steps == 7


def test_no_lines_without_the_bar(monkeypatch):
    monkeypatch.setattr(sys, "stdout", Stream(False))
    assert build_trainer(trainer_config(False), loggers=False).progress_bar_callback is None
    assert progress_callbacks(False, 7) == []


def test_a_closed_stream_is_no_terminal():
    stream = io.StringIO()
    stream.close()  # isatty() now raises
    assert not text_progress.is_terminal(stream)
    assert not text_progress.is_terminal(object())
