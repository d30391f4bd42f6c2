"""LightningDataModule: random training patches and whole-image benchmark validation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset
from torchdata.stateful_dataloader import StatefulDataLoader

from srdistill.data.benchmark_sets import BenchmarkDataset
from srdistill.data.sampler import ResumableRandomSampler
from srdistill.data.samples import materialize_samples


class SRDataModule(LightningDataModule):
    """``train_dataset`` in batches; each validation set one image at a time.

    ``val_root=None`` validates on the embedded sample photos (``SampleVal``).
    """

    def __init__(
        self,
        train_dataset: Dataset,
        scale: int,
        batch_size: int = 16,
        num_workers: int = 2,
        val_root: str | Path | None = None,
        val_sets: Sequence[str] = ("SampleVal",),
        seed: int = 0,
        pin_memory: bool | str = "auto",
        persistent_workers: bool | str = "auto",
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.train_dataset, self.scale = train_dataset, scale
        self.batch_size, self.num_workers = batch_size, num_workers
        self.val_root = Path(val_root) if val_root is not None else None
        self.val_sets = list(val_sets)
        self.seed = seed
        # "auto": pinned when a CUDA GPU is present, persistent when there are workers
        self.pin_memory = torch.cuda.is_available() if pin_memory == "auto" else bool(pin_memory)
        self.persistent_workers = (
            num_workers > 0 if persistent_workers == "auto" else bool(persistent_workers)
        )
        if len(train_dataset) < batch_size:
            raise ValueError(
                f"training set has {len(train_dataset)} items, fewer than "
                f"batch_size={batch_size}; lower batch_size or raise data.train.repeat"
            )

    def _val_root(self) -> Path:
        return self.val_root if self.val_root is not None else materialize_samples()

    def train_dataloader(self) -> StatefulDataLoader:
        # Stateful loader + resumable sampler: checkpoints record the position in the epoch and
        # every patch is drawn from its own seed, so a resumed run sees the very same batches.
        return StatefulDataLoader(
            self.train_dataset,
            sampler=ResumableRandomSampler(len(self.train_dataset), self.seed),
            batch_size=self.batch_size,
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers,
            pin_memory=self.pin_memory,
        )

    def val_dataloader(self) -> list[DataLoader]:
        root = self._val_root()
        return [
            DataLoader(BenchmarkDataset(root, name, self.scale), batch_size=1, num_workers=0)
            for name in self.val_sets
        ]
