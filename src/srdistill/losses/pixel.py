"""Pixel losses: reconstruction against the ground truth and response KD against the teacher."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srdistill.losses.context import StepContext
from srdistill.losses.term import LossTerm

PIXEL_CRITERIA = ("l1", "l2", "charbonnier")


def pixel_loss(
    pred: torch.Tensor, target: torch.Tensor, criterion: str = "l1", eps: float = 1e-3
) -> torch.Tensor:
    """Mean elementwise distance.

    >>> float(pixel_loss(torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)))
    1.0
    """
    if pred.shape != target.shape:
        raise ValueError(f"pixel_loss: shapes differ {tuple(pred.shape)} vs {tuple(target.shape)}")
    if criterion == "l1":
        return F.l1_loss(pred, target)
    if criterion == "l2":
        return F.mse_loss(pred, target)
    if criterion == "charbonnier":
        return torch.sqrt((pred - target) ** 2 + eps**2).mean()
    raise ValueError(f"criterion must be one of {PIXEL_CRITERIA}, got {criterion!r}")


class _PixelTerm(LossTerm):
    def __init__(self, criterion: str = "l1") -> None:
        super().__init__()
        if criterion not in PIXEL_CRITERIA:
            raise ValueError(f"criterion must be one of {PIXEL_CRITERIA}, got {criterion!r}")
        self.criterion = criterion


class ReconstructionLoss(_PixelTerm):
    """L_rec = mean |I_S - GT| (or L2 / Charbonnier)."""

    def forward(self, ctx: StepContext) -> torch.Tensor:
        return pixel_loss(ctx.sr_s, ctx.gt, self.criterion)


class ResponseKDLoss(_PixelTerm):
    """L_resp = mean |I_S - I_T|: the student imitates the teacher's output."""

    needs_teacher = True

    def forward(self, ctx: StepContext) -> torch.Tensor:
        return pixel_loss(ctx.sr_s, ctx.teacher_output(), self.criterion)
