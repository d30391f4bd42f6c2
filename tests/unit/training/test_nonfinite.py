"""The non-finite guard: a NaN/inf loss or gradient skips that optimiser's step, K in a row stop."""

import functools
import math

import pytest
import torch
from torch import nn

from srdistill.losses.adversarial import GeneratorAdversarialLoss
from srdistill.losses.combine import WeightedLoss
from srdistill.losses.pixel import ReconstructionLoss
from srdistill.models.backbones.edsr import EDSR
from srdistill.models.discriminators import UNetDiscriminatorSN
from srdistill.module import DistillationModule
from srdistill.training.nonfinite import NonFiniteTrainingError
from tests.unit.test_module import fit, snapshot


class NaNOnCalls(nn.Module):
    """A loss term that is NaN on the listed (0-based) calls and a real L1 otherwise."""

    def __init__(self, nan_calls) -> None:
        super().__init__()
        self.nan_calls, self.calls = set(nan_calls), 0

    def forward(self, ctx):
        value = (ctx.sr_s - ctx.gt).abs().mean()
        if self.calls in self.nan_calls:
            value = value * float("nan")
        self.calls += 1
        return value


def make_module(nan_calls, limit=5, adversarial=False, **kwargs):
    terms = {"rec": {"weight": 1.0, "loss": ReconstructionLoss()}}
    terms["wobbly"] = {"weight": 1.0, "loss": NaNOnCalls(nan_calls)}
    if adversarial:
        terms["adv"] = {"weight": 0.01, "loss": GeneratorAdversarialLoss()}
    adam = functools.partial(torch.optim.Adam, lr=1e-2)
    return DistillationModule(
        EDSR(scale=2, num_feat=8, num_block=1),
        WeightedLoss(terms),
        adam,
        discriminator=UNetDiscriminatorSN(num_feat=8) if adversarial else None,
        d_optimizer=adam,
        val_sets=[],
        scale=2,
        max_nonfinite_steps=limit,
        **kwargs,
    )


def test_a_nan_loss_term_skips_the_step_and_is_counted():
    module = make_module(nan_calls={0})
    before = snapshot(module)
    trainer = fit(module, steps=1)
    # the only step was skipped: no weight moved, Adam never stepped, yet it counted
    assert all(torch.equal(before[k], v) for k, v in module.named_parameters())
    assert module._optimizers()[0].optimizer.state == {}
    assert trainer.global_step == 1
    assert module.nonfinite.skipped == {"g": 1, "d": 0}
    assert trainer.callback_metrics["train/skipped/g"] == 1.0
    assert trainer.callback_metrics["train/nonfinite/g/wobbly"] == 1.0


def test_finite_steps_after_a_skip_train_and_reset_the_streak():
    module = make_module(nan_calls={0}, limit=2)
    before = snapshot(module)
    fit(module, steps=3)  # skip, step, step: never two in a row
    assert module.nonfinite.skipped["g"] == 1 and module.nonfinite.streak["g"] == 0
    assert any(not torch.equal(before[k], v) for k, v in module.named_parameters())


def test_consecutive_skips_stop_the_run_naming_the_term():
    module = make_module(nan_calls={1, 2, 3}, limit=3)
    with pytest.raises(NonFiniteTrainingError, match=r"3 generator steps .*wobbly") as err:
        fit(module, steps=10)
    assert isinstance(err.value, ValueError)  # a user error: one line, exit code 2
    assert "at step 3" in str(err.value) and "optimizer.lr" in str(err.value)
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_a_nan_discriminator_loss_skips_only_the_d_step(monkeypatch):
    module = make_module(nan_calls=set(), adversarial=True)
    monkeypatch.setattr(
        "srdistill.module.discriminator_loss",
        lambda real, fake, scale: (real + fake).mean() * math.nan,
    )
    before = snapshot(module)
    fit(module, steps=2)
    assert module.nonfinite.skipped == {"g": 0, "d": 2}
    moved = {k.split(".")[0] for k, v in module.named_parameters() if not torch.equal(before[k], v)}
    assert "student" in moved and "discriminator" not in moved


def test_an_infinite_gradient_with_a_finite_loss_is_skipped():
    module = make_module(nan_calls=set())
    module.student.register_full_backward_pre_hook(
        lambda mod, grad_out: tuple(torch.full_like(g, math.inf) for g in grad_out)
    )
    before = snapshot(module)
    fit(module, steps=1)
    assert module.nonfinite.skipped["g"] == 1
    assert all(torch.equal(before[k], v) for k, v in module.named_parameters())


def test_an_infinite_learning_rate_is_refused():
    module = make_module(nan_calls=set())
    module.optimizer_factory = functools.partial(torch.optim.Adam, lr=math.inf)
    with pytest.raises(ValueError, match="optimizer.lr must be finite"):
        fit(module, steps=1)


def test_max_nonfinite_steps_must_be_positive():
    with pytest.raises(ValueError, match="max_nonfinite_steps"):
        make_module(nan_calls=set(), limit=0)
