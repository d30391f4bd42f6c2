"""Helpers for the shape readers the backbone modules declare: sizes from key names and shapes."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch


def count_keys(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    """How many keys of ``state`` match ``pattern`` in full (blocks, groups, layers)."""
    return sum(1 for key in state if re.fullmatch(pattern, key))


def pixel_shuffle_scale(state: Mapping[str, torch.Tensor], prefix: str, num_feat: int) -> int:
    """The factor of a BasicSR ``PixelShuffleUpsample`` (conv + shuffle per factor of 2, or x3)."""
    first = state[f"{prefix}.0.weight"].shape[0]
    if first == 9 * num_feat:
        return 3
    return 2 ** count_keys(state, rf"{re.escape(prefix)}\.\d+\.weight")
