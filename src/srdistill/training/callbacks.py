"""Callbacks: sample strips (LR | bicubic | teacher | student | HR) every N steps."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning import Callback
from lightning.pytorch.loggers import WandbLogger
from PIL import Image

from srdistill.data.images import to_uint8_image
from srdistill.data.matlab_bicubic import imresize
from srdistill.outputs import write_atomic


def sample_strip(lq: torch.Tensor, gt: torch.Tensor, student, teacher=None) -> torch.Tensor:
    """One (3, H, 5W) image: nearest-upscaled LR, bicubic, teacher, student, HR."""
    scale = gt.shape[-1] // lq.shape[-1]
    with torch.no_grad():
        panels = [
            torch.nn.functional.interpolate(lq[None], scale_factor=scale, mode="nearest")[0],
            imresize(lq[None].float(), scale=float(scale))[0],
            teacher(lq[None])[0] if teacher is not None else torch.zeros_like(gt),
            student(lq[None])[0],
            gt,
        ]
    return torch.cat([p.float().clamp(0, 1).cpu() for p in panels], dim=-1)


class SampleStrips(Callback):
    """Log a strip of the first training patch every ``every_n_steps`` (PNG and W&B image)."""

    def __init__(self, every_n_steps: int = 5000, max_lr_size: int = 64) -> None:
        self.every_n_steps, self.max_lr_size = every_n_steps, max_lr_size

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or step == 0 or step % self.every_n_steps:
            return
        size = self.max_lr_size
        scale = batch["gt"].shape[-1] // batch["lq"].shape[-1]
        lq, gt = batch["lq"][0, :, :size, :size], batch["gt"][0, :, : size * scale, : size * scale]
        strip = sample_strip(lq, gt, pl_module.eval_student, pl_module.teacher)
        path = Path(trainer.default_root_dir) / "samples" / f"step_{step:07d}.png"
        image = Image.fromarray(to_uint8_image(strip))
        write_atomic(path, lambda f: image.save(f, format="PNG"), "sample strip")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    "train/samples",
                    [to_uint8_image(strip)],
                    step=step,
                    caption=["LR | bicubic | teacher | student | HR"],
                )
