"""Callbacks: sample strips of the same validation squares (training/strip_images.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from lightning import Callback
from lightning.pytorch.loggers import WandbLogger
from PIL import Image
from torch import nn

from srdistill.counts import check_count
from srdistill.outputs import write_atomic
from srdistill.training.rng import rng_untouched
from srdistill.training.steps import eval_mode
from srdistill.training.strip_images import (
    Upscaler,
    common_crop_size,
    cut_region,
    most_detailed_region,
    render_strip,
    row_panels,
)

log = logging.getLogger(__name__)


def validation_images(trainer, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``count`` (LR, HR) float images of the first validation set; [] without one."""
    datamodule = trainer.datamodule
    loaders = datamodule.val_dataloader() if datamodule is not None else trainer.val_dataloaders
    if isinstance(loaders, (list, tuple)):
        loaders = loaders[0] if loaders else None
    if loaders is None:
        return []
    dataset = loaders.dataset
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    return [(as_float(item["lq"]), as_float(item["gt"])) for item in items]


def as_float(image: torch.Tensor) -> torch.Tensor:
    return image.float() / 255 if image.dtype == torch.uint8 else image.float()


def on_device(network: nn.Module, device: torch.device) -> Upscaler:
    return lambda lq: network(lq.to(device))


def teacher_upscaler(module) -> Upscaler | None:
    """The module's frozen teacher as it runs in training (its autocast); None without one."""
    if module.teacher is None:
        return None
    return lambda lq: module.teacher_forward(lq.to(module.device))[0]


class SampleStrips(Callback):
    """Every ``every_n_steps`` a strip of the student on the same validation squares, and one
    of the deployed student (``export_student``) at the end of training: PNGs under
    ``<run>/samples/`` and W&B images ``train/samples``.

    Rows: the most detailed square (gradient energy) of ``crop_size`` HR pixels of each of the
    first ``images`` images of the first validation set, chosen once at the start of training.
    Panels are nearest-upsampled by a whole factor to at least ``panel_size`` pixels; the
    networks see ``margin`` LR pixels of the image around each square.
    """

    def __init__(
        self,
        every_n_steps: int = 5000,
        images: int = 2,
        crop_size: int = 128,
        panel_size: int = 256,
        margin: int = 8,
    ) -> None:
        check_count("callbacks.samples.every_n_steps", every_n_steps)
        check_count("callbacks.samples.images", images)
        check_count("callbacks.samples.crop_size", crop_size)
        check_count("callbacks.samples.panel_size", panel_size)
        check_count("callbacks.samples.margin", margin, minimum=0)
        self.every_n_steps, self.images, self.crop_size = every_n_steps, images, crop_size
        self.panel_size, self.margin = panel_size, margin
        self.rows: list = []  # strip_images.RowPanels, one per image; empty: no strips
        self.zoom = 1

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            with rng_untouched():  # a resumed run restored its generators before this hook
                self.choose_rows(trainer, pl_module)

    def choose_rows(self, trainer, pl_module) -> None:
        images = validation_images(trainer, self.images)
        if not images:
            log.warning("callbacks.samples: no validation images, so no sample strips")
            return
        size = common_crop_size(images, self.crop_size)
        teacher = teacher_upscaler(pl_module)
        self.rows = []
        for lq, gt in images:
            region = most_detailed_region(gt, gt.shape[-1] // lq.shape[-1], size)
            self.rows.append(row_panels(cut_region(lq, gt, region, self.margin), teacher))
        self.zoom = -(-self.panel_size // size)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if not self.rows or step == 0 or step % self.every_n_steps:
            return
        if step >= trainer.max_steps > 0:
            return  # the last step's strip is the deployed student's, at the end of training
        student = pl_module.eval_student
        with eval_mode(student, True), rng_untouched():
            upscaler = on_device(student, pl_module.device)
            self.write(trainer, upscaler, f"student, step {step}", f"step_{step:07d}.png")

    def on_train_end(self, trainer, pl_module) -> None:
        if not self.rows:
            return
        step = trainer.global_step
        upscaler = on_device(pl_module.export_student(), pl_module.device)
        label, name = f"deployed student, step {step}", f"step_{step:07d}_deployed.png"
        self.write(trainer, upscaler, label, name)

    def write(self, trainer, student: Upscaler, student_label: str, name: str) -> None:
        """The strip as ``<run>/samples/<name>`` and as a W&B image, captioned with its labels."""
        strip, labels = render_strip(self.rows, student, student_label, self.zoom)
        path = Path(trainer.default_root_dir) / "samples" / name
        image = Image.fromarray(strip)
        write_atomic(path, lambda f: image.save(f, format="PNG"), "sample strip")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                caption = " | ".join(labels)
                logger.log_image(
                    "train/samples", [strip], step=trainer.global_step, caption=[caption]
                )
