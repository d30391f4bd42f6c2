"""DUKD (data upcycling KD, Zhang et al. 2023): the student imitates the teacher on inputs that
have no ground truth, made from the batch by ``srdistill.data.upcycling``.

Both terms run the networks on inputs of their own (they never read ``ctx.sr_s``), so with
``loss.step_groups`` they cost no extra student forward on the batch. The teacher runs under
no_grad (the released code tracks gradients through it on the zoom-in tiles).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srdistill.data.upcycling import (
    augment,
    invert_augment,
    sample_augment_ops,
    zoom_in,
    zoom_out,
    zoom_out_target,
)
from srdistill.losses.context import StepContext
from srdistill.losses.term import LossTerm


def _networks(ctx: StepContext) -> tuple[nn.Module, nn.Module]:
    if ctx.student is None or ctx.teacher is None:
        raise RuntimeError("DUKD terms run the student and teacher: set ctx.student/ctx.teacher")
    return ctx.student, ctx.teacher


class _UpcyclingTerm(LossTerm):
    needs_teacher = True
    runs_teacher = True  # on upcycled inputs: the teacher-output cache cannot stand in
    reads_student_output = False

    def __init__(self, scale: int) -> None:
        super().__init__()
        if int(scale) < 2:
            raise ValueError(f"DUKD upcycling needs scale >= 2, got {scale}")
        self.scale = int(scale)


class ZoomInLoss(_UpcyclingTerm):
    """``L_zi = mean |T(u) - a^{-1}(S(a(u)))|``: u = ``n_sub`` HR tiles of LR size, ``a`` the
    label-consistency augmentations, each op applied per tile with probability ``p``."""

    def __init__(self, scale: int, n_sub: int = 1, p: float = 0.3) -> None:
        super().__init__(scale)
        if not 1 <= n_sub <= self.scale**2:
            raise ValueError(f"n_sub must be in [1, scale^2 = {self.scale**2}], got {n_sub}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.n_sub, self.p = int(n_sub), float(p)

    def forward(self, ctx: StepContext) -> torch.Tensor:
        student, teacher = _networks(ctx)
        tiles = zoom_in(ctx.gt, self.scale, self.n_sub)
        ops = sample_augment_ops(tiles.shape[0], self.p)
        with torch.no_grad():
            target = teacher(tiles)
        return F.l1_loss(invert_augment(student(augment(tiles, ops)), ops), target)


class ZoomOutLoss(_UpcyclingTerm):
    """``L_zo = rec_weight * mean |S(x_dn) - x| + kd_weight * mean |S(x_dn) - T(x_dn)|`` with
    x_dn the LR batch shrunk by 1/s; the two parts are logged as ``zoom_out/rec`` and ``/kd``."""

    def __init__(self, scale: int, rec_weight: float = 5.0, kd_weight: float = 1.0) -> None:
        super().__init__(scale)
        self.rec_weight, self.kd_weight = float(rec_weight), float(kd_weight)
        self.last_values: dict[str, torch.Tensor] = {}

    def forward(self, ctx: StepContext) -> torch.Tensor:
        student, teacher = _networks(ctx)
        small = zoom_out(ctx.lq, self.scale)
        out = student(small)
        rec = F.l1_loss(out, zoom_out_target(ctx.lq, self.scale))
        total = self.rec_weight * rec
        self.last_values = {"rec": rec.detach()}
        if self.kd_weight:
            with torch.no_grad():
                target = teacher(small)
            kd = F.l1_loss(out, target)
            total = total + self.kd_weight * kd
            self.last_values["kd"] = kd.detach()
        return total

    def logged_values(self) -> dict[str, torch.Tensor]:
        return self.last_values
