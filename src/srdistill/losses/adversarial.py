"""Non-saturating GAN losses for adversarial distillation (D outputs logits)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srdistill.losses.context import StepContext
from srdistill.losses.term import LossTerm


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """L_adv = -E log D(I_S) = E softplus(-logit).

    >>> round(float(generator_loss(torch.zeros(4))), 4)  # D undecided: log 2
    0.6931
    """
    return F.softplus(-fake_logits).mean()


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, scale: float = 1.0
) -> torch.Tensor:
    """L_D = -E log D(GT) - E log(1 - D(I_S)), times ``scale`` (the released code uses 0.5)."""
    return scale * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())


class GeneratorAdversarialLoss(LossTerm):
    """The student's adversarial term; D is read from the step context and not updated here."""

    adversarial = True

    def forward(self, ctx: StepContext) -> torch.Tensor:
        if ctx.discriminator is None:
            raise RuntimeError("the adversarial term needs a discriminator (loss.discriminator)")
        return generator_loss(ctx.discriminator(ctx.sr_s))
