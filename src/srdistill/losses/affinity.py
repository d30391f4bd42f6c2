"""Feature distillation between tapped layers: spatial affinity (FAKD, DSCLoRA) and the
"w/o SA" ablation (L1 after a learned 1x1 channel alignment).

The affinity of a feature map ``F`` (C x H x W) is ``A = F_n^T F_n`` (HW x HW) where ``F_n`` has
each spatial position's channel vector L2-normalised: the cosine similarity of every pair of
positions. It does not depend on C, so a 26-channel student matches a 28-channel teacher.

Memory: ``A`` has (HW)^2 entries (16.8 M per map for a 64 x 64 patch). The loss is computed in
row blocks of ``chunk_rows`` positions, each under activation checkpointing, so neither the
forward nor the backward ever holds more than ``chunk_rows x HW`` affinity entries per sample;
the result is exact (no subsampling).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from srdistill.losses.context import StepContext
from srdistill.losses.term import LossTerm


def normalized_positions(feat: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, HW) with every position's channel vector of unit L2 norm."""
    return F.normalize(feat.flatten(2).float(), dim=1, eps=eps)


def spatial_affinity(feat: torch.Tensor) -> torch.Tensor:
    """The full (N, HW, HW) affinity; for tests and small maps (the loss never builds it)."""
    f = normalized_positions(feat)
    return f.transpose(1, 2) @ f


def _block_l1_sum(fs: torch.Tensor, ft: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    rows_s = fs[:, :, start:stop].transpose(1, 2) @ fs
    rows_t = ft[:, :, start:stop].transpose(1, 2) @ ft
    return (rows_s - rows_t).abs().sum()


def affinity_l1(feat_s: torch.Tensor, feat_t: torch.Tensor, chunk_rows: int = 1024) -> torch.Tensor:
    """``mean |A_s - A_t|`` over the batch and the HW x HW entries, computed in row blocks."""
    if feat_s.shape[0] != feat_t.shape[0] or feat_s.shape[2:] != feat_t.shape[2:]:
        raise ValueError(
            f"affinity needs the same batch and spatial size, got {tuple(feat_s.shape)} "
            f"and {tuple(feat_t.shape)}"
        )
    fs, ft = normalized_positions(feat_s), normalized_positions(feat_t.detach())
    n, _, hw = fs.shape
    total = fs.new_zeros(())
    for start in range(0, hw, chunk_rows):
        stop = min(start + chunk_rows, hw)
        if fs.requires_grad:
            total = total + checkpoint(_block_l1_sum, fs, ft, start, stop, use_reentrant=False)
        else:
            total = total + _block_l1_sum(fs, ft, start, stop)
    return total / (n * hw * hw)


class _TappedFeatureLoss(LossTerm):
    """A term reading the same named taps of student and teacher (``ctx.feats_s/feats_t``)."""

    needs_teacher = True

    def __init__(self, taps: Sequence[str]) -> None:
        super().__init__()
        if not taps:
            raise ValueError(f"{type(self).__name__} needs at least one tap (e.g. block_1)")
        self.taps = list(taps)

    @property
    def student_taps(self) -> list[str]:
        return self.taps

    teacher_taps = student_taps


class SpatialAffinityLoss(_TappedFeatureLoss):
    """``L_SA = sum_l mean |A_S^l - A_T^l|`` over the tapped layers (same names in both nets)."""

    def __init__(self, taps: Sequence[str], chunk_rows: int = 1024) -> None:
        super().__init__(taps)
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        self.chunk_rows = chunk_rows

    def forward(self, ctx: StepContext) -> torch.Tensor:
        return sum(
            affinity_l1(ctx.feats_s[tap], ctx.feats_t[tap], self.chunk_rows) for tap in self.taps
        )


class AlignedFeatureLoss(_TappedFeatureLoss):
    """``sum_l mean |conv1x1_l(F_S^l) - F_T^l|``: the "w/o SA" ablation (a learned 1x1 conv per
    layer maps student channels to teacher channels; it trains with the student)."""

    def __init__(self, taps: Sequence[str], student_channels: int, teacher_channels: int) -> None:
        super().__init__(taps)
        self.align = nn.ModuleList(
            nn.Conv2d(student_channels, teacher_channels, 1) for _ in self.taps
        )

    def forward(self, ctx: StepContext) -> torch.Tensor:
        return sum(
            F.l1_loss(align(ctx.feats_s[tap]), ctx.feats_t[tap].detach())
            for tap, align in zip(self.taps, self.align, strict=True)
        )
