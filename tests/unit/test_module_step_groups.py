"""loss.step_groups: one optimizer step per group of terms, each group after the previous
group's step; trainer.max_steps, the LR schedule and EMA still count iterations."""

import functools

import pytest
import torch
from torch import nn

from srdistill.losses.combine import WeightedLoss
from srdistill.losses.dukd import ZoomInLoss, ZoomOutLoss
from srdistill.losses.pixel import ReconstructionLoss, ResponseKDLoss
from tests.helpers.tiny_module import fit, tiny_module


class Recording(nn.Module):
    """L1 to the ground truth that remembers the student's first weight and ``ctx.sr_s``."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, ctx):
        self.seen.append((ctx.student.conv_first.weight.detach().clone(), ctx.sr_s.detach()))
        return (ctx.sr_s - ctx.gt).abs().mean()


def dukd_loss(step_groups=(("rec", "resp"), ("zoom_in", "zoom_out"))):
    terms = {
        "rec": {"weight": 5.0, "loss": ReconstructionLoss()},
        "resp": {"weight": 1.0, "loss": ResponseKDLoss()},
        "zoom_in": {"weight": 1.0, "loss": ZoomInLoss(scale=2)},
        "zoom_out": {"weight": 1.0, "loss": ZoomOutLoss(scale=2)},
    }
    groups = [list(g) for g in step_groups] if step_groups is not None else None
    return WeightedLoss(terms, groups)


def adam_steps(trainer, module):
    return int(trainer.optimizers[0].state[module.student.conv_first.weight]["step"])


@pytest.mark.parametrize(("groups", "per_iteration"), [("dukd", 2), (None, 1)])
def test_one_optimizer_step_per_group_and_max_steps_counts_iterations(groups, per_iteration):
    module = tiny_module(dukd_loss() if groups else dukd_loss(None))
    scheduler = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    module.scheduler_factory = scheduler
    calls = []
    original = module.training_step
    module.training_step = lambda *a: calls.append(1) or original(*a)
    trainer = fit(module, steps=3)
    assert len(calls) == 3 and trainer.global_step == 3
    assert adam_steps(trainer, module) == 3 * per_iteration
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(1e-3 * 0.5**3)  # the schedule steps once per iteration


def test_a_later_group_sees_the_student_after_the_earlier_step():
    first, second = Recording(), Recording()
    loss = WeightedLoss(
        {"a": {"weight": 1.0, "loss": first}, "b": {"weight": 1.0, "loss": second}},
        [["a"], ["b"]],
    )
    module = tiny_module(loss)
    fit(module, steps=1)
    (w_a, sr_a), (w_b, sr_b) = first.seen[0], second.seen[0]
    assert not torch.equal(w_a, w_b)  # step A moved the student before B was evaluated
    assert not torch.equal(sr_a, sr_b)  # and B's ctx.sr_s was recomputed with it
    assert not torch.equal(w_b, module.student.conv_first.weight.detach())  # and B's step too


def test_ema_updates_once_per_iteration():
    module = tiny_module(dukd_loss(), ema_decay=0.5)
    updates = []
    original = module.student_ema.update
    module.student_ema.update = lambda s: updates.append(1) or original(s)
    fit(module, steps=2)
    assert len(updates) == 2


def test_upcycling_terms_cost_no_extra_student_forward_on_the_batch():
    module = tiny_module(dukd_loss())
    sizes = []
    module.student.register_forward_hook(lambda _m, inputs, _o: sizes.append(inputs[0].shape))
    fit(module, steps=1)
    # the batch once (step A), the zoom-in tiles (n_sub * B of LR size), the zoom-out input
    # (LR / 2): the student's output on the batch is not recomputed for step B
    assert sizes == [(2, 3, 8, 8), (2, 3, 8, 8), (2, 3, 4, 4)]


def test_gradients_never_reach_the_teacher():
    module = tiny_module(dukd_loss())
    fit(module, steps=1)
    assert all(p.grad is None for p in module.teacher.parameters())
