"""A tiny DistillationModule (one-block EDSR x2 networks) and a short CPU ``fit`` for the tests
of the training step."""

from __future__ import annotations

import functools

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from srdistill.losses.combine import WeightedLoss
from srdistill.models.backbones.edsr import EDSR
from srdistill.models.discriminators import UNetDiscriminatorSN
from srdistill.module import DistillationModule

ADAM = functools.partial(torch.optim.Adam, lr=1e-3)


class RandomPairs(Dataset):
    """Eight seeded 8x8 -> 16x16 (x2) pairs."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"lq": torch.rand(3, 8, 8, generator=g), "gt": torch.rand(3, 16, 16, generator=g)}


def tiny_module(
    loss: WeightedLoss, *, seed: int | None = 0, adversarial: bool = False, **module_kwargs
) -> DistillationModule:
    """Student EDSR (8 features), teacher EDSR (12), Adam 1e-3, no validation sets;
    ``adversarial`` adds a UNet discriminator (8 features) with its own Adam 1e-3. The networks
    are drawn after ``torch.manual_seed(seed)`` (``seed=None``: from the generator as it is).
    ``module_kwargs`` go to DistillationModule (``balance=``, ``ema_decay=``, ...)."""
    if seed is not None:
        torch.manual_seed(seed)
    student = EDSR(scale=2, num_feat=8, num_block=1)
    teacher = EDSR(scale=2, num_feat=12, num_block=1)
    if adversarial:
        module_kwargs.update(discriminator=UNetDiscriminatorSN(num_feat=8), d_optimizer=ADAM)
    return DistillationModule(
        student, loss, ADAM, teacher=teacher, val_sets=[], scale=2, **module_kwargs
    )


def fit(module, steps=1, dataset=None, **trainer_kwargs) -> L.Trainer:
    """``steps`` training iterations on CPU (batches of two ``RandomPairs``), nothing logged,
    saved or validated."""
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        **trainer_kwargs,
    )
    trainer.fit(module, DataLoader(dataset or RandomPairs(), batch_size=2))
    return trainer
