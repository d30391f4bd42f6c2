"""DistillationModule with ConvLoRA and feature distillation: what learns, at which rate, and
the deployed student (merged and averaged)."""

import copy
import functools

import pytest
import torch

from srdistill.lora.inject import LoRASpec, lora_modules
from srdistill.losses.affinity import SpatialAffinityLoss
from srdistill.losses.combine import WeightedLoss
from srdistill.losses.pixel import ReconstructionLoss, ResponseKDLoss
from srdistill.models.backbones.span import SPAN
from srdistill.module import DistillationModule
from tests.unit.test_module import fit, snapshot

TARGETS = [
    {"pattern": r"block_\d+\.c[123]_r\.eval_conv", "rank": 2},
    {"pattern": r"conv_2\.eval_conv|upsampler\.0", "rank": 4},
]


def span(channels):
    return SPAN(scale=2, feature_channels=channels)


def make_module(b_lr_ratio=1.0, average_weight=None, lr=1e-3, ema=None):
    torch.manual_seed(0)
    pretrained = span(6)
    student = copy.deepcopy(pretrained)
    LoRASpec(TARGETS, b_lr_ratio=b_lr_ratio).apply(student)
    loss = WeightedLoss(
        {
            "rec": {"weight": 1.0, "loss": ReconstructionLoss()},
            "ts": {"weight": 0.1, "loss": ResponseKDLoss()},
            "sa": {"weight": 0.01, "loss": SpatialAffinityLoss(["block_1", "block_6"])},
        }
    )
    module = DistillationModule(
        student,
        loss,
        functools.partial(torch.optim.Adam, lr=lr),
        teacher=span(8),
        val_sets=[],
        scale=2,
        ema_decay=ema,
        average_weight=average_weight,
        pretrained_student=pretrained.state_dict() if average_weight is not None else None,
    )
    return module, pretrained


def test_only_adapters_learn_and_the_teacher_is_untouched():
    module, pretrained = make_module()
    teacher_before = copy.deepcopy(module.teacher.state_dict())
    before = snapshot(module)
    fit(module, steps=2)
    moved = {k for k, v in module.named_parameters() if not torch.equal(before[k], v)}
    assert moved and all(k.rsplit(".", 1)[-1] in ("lora_A", "lora_B") for k in moved)
    assert any(k.endswith("lora_B") for k in moved)
    for key, value in teacher_before.items():
        assert torch.equal(value, module.teacher.state_dict()[key])


def test_feature_taps_reach_the_affinity_term(monkeypatch):
    module, _ = make_module()
    seen = {}
    term = module.loss.terms["sa"]
    original = term.forward

    def record(ctx):
        seen["s"], seen["t"] = set(ctx.feats_s), set(ctx.feats_t)
        return original(ctx)

    monkeypatch.setattr(term, "forward", record)
    fit(module)
    assert seen == {"s": {"block_1", "block_6"}, "t": {"block_1", "block_6"}}


def test_lora_plus_really_uses_two_learning_rates():
    module, _ = make_module(b_lr_ratio=16.0, lr=1e-3)
    trainer = fit(module, steps=1)
    (opt,) = trainer.optimizers
    lrs = sorted(group["lr"] for group in opt.param_groups)
    assert lrs == pytest.approx([1e-3, 16e-3])
    b_ids = {id(a.lora_B) for a in lora_modules(module.student).values()}
    fast = next(g for g in opt.param_groups if g["lr"] == pytest.approx(16e-3))
    assert {id(p) for p in fast["params"]} == b_ids
    # Adam's first step moves every parameter with a non-zero gradient by ~lr: B by 16x more
    step = max(a.lora_B.abs().max().item() for a in lora_modules(module.student).values())
    assert step == pytest.approx(16e-3, rel=1e-3)


def test_lora_plus_learning_rate_ratio_survives_the_schedule():
    module, _ = make_module(b_lr_ratio=4.0)
    module.scheduler_factory = functools.partial(
        torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5
    )
    trainer = fit(module, steps=2)
    lrs = sorted(g["lr"] for g in trainer.optimizers[0].param_groups)
    assert lrs == pytest.approx([0.25e-3, 1e-3])


def test_exported_student_is_merged_and_averaged():
    module, pretrained = make_module(average_weight=0.5)
    fit(module, steps=2)
    exported = module.export_student()
    assert set(exported.state_dict()) == set(pretrained.state_dict())
    trained = copy.deepcopy(module.student)
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        for name, adapter in lora_modules(trained).items():
            expected = pretrained.get_submodule(name).weight + 0.5 * adapter.delta_weight()
            torch.testing.assert_close(exported.get_submodule(name).weight, expected)
        assert not torch.equal(exported(x), pretrained(x))


def test_without_averaging_the_export_computes_what_training_validated():
    module, _ = make_module(ema=0.5)
    fit(module, steps=2)
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(
            module.export_student()(x), module.eval_student(x), atol=1e-5, rtol=1e-5
        )


def test_averaging_needs_the_pretrained_weights():
    with pytest.raises(ValueError, match="average_weight"):
        DistillationModule(
            span(4),
            WeightedLoss({"rec": {"weight": 1.0, "loss": ReconstructionLoss()}}),
            torch.optim.Adam,
            average_weight=0.5,
        )


def test_a_tap_the_student_lacks_fails_at_construction():
    loss = WeightedLoss({"sa": {"weight": 1.0, "loss": SpatialAffinityLoss(["block_9"])}})
    with pytest.raises(ValueError, match="block_9"):
        DistillationModule(span(4), loss, torch.optim.Adam, teacher=span(4))
