"""Feature-KD baselines on paired taps: FitNet (hint regression) and AT (attention transfer).

Student and teacher taps are paired by position: ``student_taps[k]`` is compared with
``teacher_taps[k]`` (the backbone configs name them in ``kd_taps``, e.g. a 32-block student and
an 8-block teacher tap different block indices at the same relative depth). All the networks
here keep LR resolution through the body, so paired features differ only in channel count.
Teacher features are always detached: only the student and a term's own modules get gradients.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from srdistill.losses.context import StepContext
from srdistill.losses.term import LossTerm

FITNET_MODES = ("regressor", "channel_mean")
AT_MODES = ("sr", "original")


class PairedTapLoss(LossTerm):
    """A term comparing ``ctx.feats_s[student_taps[k]]`` with ``ctx.feats_t[teacher_taps[k]]``."""

    needs_teacher = True

    def __init__(self, taps_s: Sequence[str], taps_t: Sequence[str]) -> None:
        super().__init__()
        if not taps_s or len(taps_s) != len(taps_t):
            raise ValueError(
                f"{type(self).__name__} pairs taps by position: give the same non-zero number of "
                f"student and teacher taps, got {list(taps_s)} and {list(taps_t)}"
            )
        self.student_taps, self.teacher_taps = list(taps_s), list(taps_t)

    def pairs(self, ctx: StepContext) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(student, detached teacher) feature pairs in fp32 (AMP-safe sums of squares)."""
        for tap_s, tap_t in zip(self.student_taps, self.teacher_taps, strict=True):
            feat_s, feat_t = ctx.feats_s[tap_s], ctx.feats_t[tap_t]
            for role, tap, feat in (("student", tap_s, feat_s), ("teacher", tap_t, feat_t)):
                if feat.dim() != 4:  # e.g. a transformer block's tokens (B, L, C)
                    raise ValueError(
                        f"kd_taps.{role} {tap} gives a {feat.dim()}-D feature "
                        f"{tuple(feat.shape)}; feature losses pair image features (B, C, H, W): "
                        "tap a module whose output is an image (or a named point)"
                    )
            yield feat_s.float(), feat_t.detach().float()

    def forward(self, ctx: StepContext) -> torch.Tensor:
        # torch.stack keeps every per-tap loss in the graph (a torch.tensor([...]) would detach)
        losses = [self.pair_loss(k, fs, ft) for k, (fs, ft) in enumerate(self.pairs(ctx))]
        return torch.stack(losses).sum()

    def pair_loss(self, index: int, feat_s: torch.Tensor, feat_t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class FitNetLoss(PairedTapLoss):
    """``sum_k mean |r_k(F_S^k / s) - F_T^k / s|`` with a trainable conv ``r_k`` per pair.

    ``s`` (``feature_scale``) is the backbone's internal pixel range (255 for EDSR/RCAN, 1 for
    SwinIR), so raw-feature regression has the same magnitude on every backbone. The regressors
    are built from the configured channel counts (the optimiser is built before the first step)
    and train with the student; they are not part of the exported student.
    ``mode="channel_mean"``: no regressor, compare the channel means ``mean_c F`` instead.
    """

    def __init__(
        self,
        taps_s: Sequence[str],
        taps_t: Sequence[str],
        student_channels: int,
        teacher_channels: int,
        feature_scale: float = 1.0,
        mode: str = "regressor",
        kernel_size: int = 1,
    ) -> None:
        super().__init__(taps_s, taps_t)
        if mode not in FITNET_MODES:
            raise ValueError(f"fitnet mode must be one of {FITNET_MODES}, got {mode!r}")
        if feature_scale <= 0 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"fitnet needs feature_scale > 0 and an odd kernel_size, got "
                f"{feature_scale} and {kernel_size}"
            )
        self.mode, self.feature_scale = mode, float(feature_scale)
        self.regressors = nn.ModuleList(
            nn.Conv2d(student_channels, teacher_channels, kernel_size, padding=kernel_size // 2)
            for _ in self.student_taps
            if mode == "regressor"
        )

    def pair_loss(self, index: int, feat_s: torch.Tensor, feat_t: torch.Tensor) -> torch.Tensor:
        feat_s, feat_t = feat_s / self.feature_scale, feat_t / self.feature_scale
        if self.mode == "channel_mean":
            return F.l1_loss(feat_s.mean(1), feat_t.mean(1))
        regressor = self.regressors[index]
        return F.l1_loss(regressor(feat_s.to(regressor.weight.dtype)).float(), feat_t)


def attention_map(feat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """SR attention map: ``sum_c F_c^2`` (N, H, W), divided by its Frobenius norm (+ eps)."""
    energy = feat.float().pow(2).sum(1)
    return energy / (energy.flatten(1).norm(dim=1).view(-1, 1, 1) + eps)


class AttentionTransferLoss(PairedTapLoss):
    """AT, channel-count agnostic.

    ``mode="sr"`` (FAKD/DUKD code): ``sum_k mean |A(F_S^k) - A(F_T^k)|`` with ``attention_map``.
    ``mode="original"`` (Zagoruyko & Komodakis): the flattened ``sum_c F_c^2`` maps L2-normalised
    per sample, ``sum_k mean (Q_S - Q_T)^2``; the paper's beta (1e3) is the term weight.
    """

    def __init__(self, taps_s: Sequence[str], taps_t: Sequence[str], mode: str = "sr") -> None:
        super().__init__(taps_s, taps_t)
        if mode not in AT_MODES:
            raise ValueError(f"at mode must be one of {AT_MODES}, got {mode!r}")
        self.mode = mode

    def pair_loss(self, index: int, feat_s: torch.Tensor, feat_t: torch.Tensor) -> torch.Tensor:
        if self.mode == "sr":
            return F.l1_loss(attention_map(feat_s), attention_map(feat_t))
        q_s = F.normalize(feat_s.pow(2).sum(1).flatten(1), dim=1)
        q_t = F.normalize(feat_t.pow(2).sum(1).flatten(1), dim=1)
        return F.mse_loss(q_s, q_t)
