"""A batch carrying the teacher's output (the teacher-output cache) replaces the teacher's pass."""

import pytest
import torch

from srdistill.cli.builders import build_loss
from tests.helpers.configs import compose_config
from tests.unit.test_module import RandomPairs, fit, make_module


class PairsWithTeacherOutput(RandomPairs):
    def __getitem__(self, i):
        item = super().__getitem__(i)
        return {**item, "sr_t": torch.full_like(item["gt"], 0.5)}


def test_the_served_output_is_used_and_the_teacher_never_runs(monkeypatch):
    module = make_module()

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran although the batch carried its output")

    monkeypatch.setattr(module, "teacher_forward", no_teacher)
    seen = []
    original = module.loss.terms["resp"].forward
    module.loss.terms["resp"].forward = lambda ctx: seen.append(ctx.sr_t) or original(ctx)
    fit(module, dataset=PairsWithTeacherOutput())
    assert seen and all(torch.equal(t, torch.full_like(t, 0.5)) for t in seen)


def test_without_a_served_output_the_teacher_runs(monkeypatch):
    module = make_module()
    calls = []
    original = module.teacher_forward
    monkeypatch.setattr(module, "teacher_forward", lambda *a: calls.append(1) or original(*a))
    fit(module)
    assert calls


@pytest.mark.parametrize(
    ("loss", "outputs_only"),
    [
        ("kd", True),
        ("mcad", True),
        ("mcad_released", True),
        ("csd", True),
        ("scratch", False),
        ("fitnet", False),
        ("at", False),
        ("rkd", False),
        ("fakd", False),
        ("dukd", False),
        ("mipkd", False),
        ("dsclora", False),
    ],
)
def test_which_losses_the_cache_can_serve(loss, outputs_only):
    cfg = compose_config("train", ["experiment=smoke", f"loss={loss}"])
    assert build_loss(cfg.loss).reads_teacher_outputs_only is outputs_only
