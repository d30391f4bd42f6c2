"""The non-finite guard: a step whose loss or gradient is NaN/infinite is skipped, not taken.

One bad batch (an overflow, a degenerate patch) must not poison the weights, and a diverged run
must stop rather than train on for days: after ``limit`` skips in a row of one optimiser (``g``
the generator, ``d`` the discriminator) the run ends with an error naming the offending terms.
"""

from __future__ import annotations

import math

import torch

ROLES = {"g": ("generator", "optimizer"), "d": ("discriminator", "d_optimizer")}


class NonFiniteTrainingError(ValueError):
    """Too many optimiser steps in a row were skipped for a NaN/infinite loss or gradient."""

    def __init__(self, role: str, count: int, step: int, terms: set[str]) -> None:
        who, option = ROLES[role]
        super().__init__(
            f"training diverged: {count} {who} steps in a row skipped at step {step}, "
            f"non-finite: {', '.join(sorted(terms))}; lower {option}.lr or set "
            "module.grad_clip_norm (checkpoints/last.ckpt keeps the last finite state)"
        )


def gradients_finite(optimizer: torch.optim.Optimizer) -> bool:
    params = (p for group in optimizer.param_groups for p in group["params"])
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())


def check_finite_lr(optimizer: torch.optim.Optimizer, name: str) -> None:
    # an infinite step size turns finite gradients into non-finite weights, which no skip undoes
    for group in optimizer.param_groups:
        if not math.isfinite(float(group["lr"])):
            raise ValueError(f"{name}.lr must be finite, got {group['lr']}")


class NonFiniteGuard:
    """Counts skipped steps per optimiser, in all and in a row; raises past ``limit`` in a row
    (``None``: never)."""

    def __init__(self, limit: int | None = 5) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"module.max_nonfinite_steps must be positive or null, got {limit}")
        self.limit = limit
        self.skipped = {"g": 0, "d": 0}
        self.streak = {"g": 0, "d": 0}
        self._terms: dict[str, set[str]] = {"g": set(), "d": set()}

    def record(self, role: str, skipped: bool, terms: list[str], step: int, log=None) -> None:
        """One optimiser step of ``role``, skipped or not; ``log(name, value, ...)`` (a
        LightningModule's) gets ``train/nonfinite/<role>/<term>`` = 1 per culprit of a skip."""
        for term in terms if skipped and log is not None else ():
            log(f"train/nonfinite/{role}/{term}", 1.0, on_step=True, on_epoch=False)
        if not skipped:
            self.streak[role], self._terms[role] = 0, set()
            return
        self.skipped[role] += 1
        self.streak[role] += 1
        self._terms[role].update(terms or ["on another process"])
        if self.limit is not None and self.streak[role] >= self.limit:
            raise NonFiniteTrainingError(role, self.streak[role], step, self._terms[role])


def skip_decision(trainer, optimizer, losses: dict[str, torch.Tensor]) -> tuple[bool, list[str]]:
    """Whether to skip the step (its gradients then dropped) for a NaN/infinite loss or
    gradient, and the culprits.

    Decided after the backward pass so that every DDP process takes the same decision from the
    synchronised gradients. With a GradScaler (16-bit mixed precision) the scaler skips
    overflowing steps itself and tunes its scale on them, so only the losses are checked and the
    gradients are left to it.
    """
    bad = [name for name, value in losses.items() if not torch.isfinite(value.detach()).all()]
    scaler = getattr(trainer.precision_plugin, "scaler", None)
    if not bad and scaler is None and not gradients_finite(optimizer):
        bad = ["gradient"]
    skip = trainer.strategy.reduce_boolean_decision(bool(bad), all=False)
    if skip and scaler is None:
        optimizer.zero_grad(set_to_none=True)  # the optimizer's step then moves nothing
    return skip, [b for b in bad if b != "total"] or bad
