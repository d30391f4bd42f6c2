import math

import pytest
import torch

from srdistill.losses.adversarial import (
    GeneratorAdversarialLoss,
    discriminator_loss,
    generator_loss,
)
from srdistill.losses.combine import WeightedLoss
from srdistill.losses.context import StepContext
from srdistill.losses.pixel import ReconstructionLoss, ResponseKDLoss, pixel_loss


def test_pixel_criteria_hand_computed():
    a, b = torch.zeros(1, 1, 1, 2), torch.tensor([[[[1.0, -3.0]]]])
    assert pixel_loss(a, b, "l1").item() == pytest.approx(2.0)
    assert pixel_loss(a, b, "l2").item() == pytest.approx(5.0)
    charbonnier = (math.sqrt(1 + 1e-6) + math.sqrt(9 + 1e-6)) / 2
    assert pixel_loss(a, b, "charbonnier").item() == pytest.approx(charbonnier)
    with pytest.raises(ValueError, match="criterion"):
        pixel_loss(a, b, "l3")
    with pytest.raises(ValueError, match="shapes differ"):
        pixel_loss(a, torch.zeros(1, 1, 2, 2))


def test_response_kd_is_zero_for_a_perfect_copy_and_needs_the_teacher():
    out = torch.rand(2, 3, 8, 8)
    ctx = StepContext(lq=out, gt=torch.zeros_like(out), sr_s=out, sr_t=out.clone())
    assert ResponseKDLoss()(ctx).item() == 0
    assert ReconstructionLoss()(ctx).item() == pytest.approx(out.mean().item())
    with pytest.raises(RuntimeError, match="needs the teacher"):
        ResponseKDLoss()(StepContext(lq=out, gt=out, sr_s=out))


def test_gan_losses_hand_computed():
    logits = torch.tensor([0.0, 2.0])
    expected_g = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    assert generator_loss(logits).item() == pytest.approx(expected_g)
    real, fake = torch.tensor([3.0]), torch.tensor([-1.0])
    expected_d = math.log(1 + math.exp(-3)) + math.log(1 + math.exp(-1))
    assert discriminator_loss(real, fake).item() == pytest.approx(expected_d)
    assert discriminator_loss(real, fake, 0.5).item() == pytest.approx(expected_d / 2)


def test_weighted_loss_sums_and_drops_zero_weights():
    out = torch.rand(2, 3, 8, 8)
    gt = torch.rand(2, 3, 8, 8)
    loss = WeightedLoss(
        {
            "rec": {"weight": 3.0, "loss": ReconstructionLoss()},
            "resp": {"weight": 0.5, "loss": ResponseKDLoss()},
            "adv": {"weight": 0.0, "loss": GeneratorAdversarialLoss()},
        }
    )
    ctx = StepContext(lq=out, gt=gt, sr_s=out, sr_t=gt.flip(0))
    total, terms = loss(ctx)
    assert set(terms) == {"rec", "resp"} and not loss.needs_discriminator and loss.needs_teacher
    assert total.item() == pytest.approx(3.0 * terms["rec"].item() + 0.5 * terms["resp"].item())
    with pytest.raises(ValueError, match="empty"):
        WeightedLoss({})
