"""The frozen teacher's forward during training: no gradients, optional bf16 autocast."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from srdistill.models.taps import forward_with_taps
from srdistill.training import perf


@torch.no_grad()
def run_frozen_teacher(
    teacher: nn.Module, lq: torch.Tensor, taps: Sequence[str] = (), autocast: str | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The teacher's output and ``taps`` features on ``lq``, without gradients. With
    ``autocast`` (``perf.teacher_autocast``) the forward runs in that precision and returns
    float32, so every loss sees float32. An NHWC teacher (``perf.channels_last``) gets an NHWC
    input also from callers outside the training step (the teacher-output cache)."""
    lq = perf.channels_last(lq) if perf.is_channels_last(teacher) else lq
    with perf.teacher_autocast(autocast, lq.device):
        sr_t, feats_t = forward_with_taps(teacher, lq, taps)
    return perf.as_float32(sr_t, feats_t) if autocast else (sr_t, feats_t)
