"""A shuffling sampler that can resume mid-epoch and seeds every sample's augmentation.

It yields ``(index, sample_seed)`` pairs: the epoch's order and each draw's seed follow from
``(seed, epoch)`` alone, so the patches a run trains on never depend on how much of the global
RNG something else consumed, nor on the number of DataLoader workers. ``state_dict`` /
``load_state_dict`` let torchdata's StatefulDataLoader (and so Lightning checkpoints) resume at
the exact position.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

_SEED_RANGE = 2**62


class ResumableRandomSampler(Sampler[tuple[int, int]]):
    def __init__(self, length: int, seed: int = 0) -> None:
        if length < 1:
            raise ValueError(f"cannot sample from an empty dataset (length {length})")
        self.length, self.seed = length, seed
        self.epoch, self.position = 0, 0
        self._restored = False

    def _epoch_plan(self) -> tuple[list[int], list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.length, generator=generator).tolist()
        seeds = torch.randint(0, _SEED_RANGE, (self.length,), generator=generator).tolist()
        return order, seeds

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.position and not self._restored:
            # the previous pass stopped short of the end (a drop_last batch sampler never asks
            # for the items of the incomplete last batch), so that epoch is over; without this
            # the next pass would serve those few items, too few for a batch: an empty epoch
            self.epoch, self.position = self.epoch + 1, 0
        self._restored = False
        order, seeds = self._epoch_plan()
        while self.position < self.length:
            i = self.position
            self.position += 1
            yield order[i], seeds[i]
        self.epoch, self.position = self.epoch + 1, 0

    def __len__(self) -> int:
        return self.length

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._restored = True  # a resumed pass continues the epoch where the state left it
