"""DistillationModule: where gradients go, what each step may change, teacher-free checkpoints."""

import functools

import pytest
import torch

from srdistill.losses.adversarial import GeneratorAdversarialLoss
from srdistill.losses.combine import WeightedLoss
from srdistill.losses.contrastive import MultiScaleContrastiveLoss
from srdistill.losses.pixel import ReconstructionLoss, ResponseKDLoss
from srdistill.models.backbones.edsr import EDSR
from srdistill.module import DistillationModule
from tests.helpers.tiny_module import RandomPairs as RandomPairs  # imported from here by others
from tests.helpers.tiny_module import fit, tiny_module


def make_module(order="g_then_d", ema=None, **module_kwargs):
    loss = WeightedLoss(
        {
            "rec": {"weight": 3.0, "loss": ReconstructionLoss()},
            "resp": {"weight": 0.5, "loss": ResponseKDLoss()},
            "cont": {
                "weight": 0.05,
                "loss": MultiScaleContrastiveLoss(dim=8, num_patches=2, patch_size=8),
            },
            "adv": {"weight": 0.01, "loss": GeneratorAdversarialLoss()},
        }
    )
    # not reseeded: callers seed (the autouse fixture, or their own seed before each build)
    return tiny_module(
        loss, seed=None, adversarial=True, step_order=order, ema_decay=ema, **module_kwargs
    )


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before, module, prefix):
    """Parameters (not buffers: spectral norm's power iteration runs on every D forward)."""
    return [
        k
        for k, v in module.named_parameters()
        if k.startswith(prefix) and not torch.equal(before[k], v)
    ]


@pytest.mark.parametrize("order", ["g_then_d", "d_then_g"])
def test_each_step_changes_only_its_own_networks(order, monkeypatch):
    module = make_module(order)
    records = {}
    for step_name in ("_generator_step", "_discriminator_step"):
        original = getattr(module, step_name)

        def wrapped(ctx, _original=original, _name=step_name):
            before = snapshot(module)
            out = _original(ctx)
            records[_name] = {
                p: changed(before, module, p) for p in ("student.", "discriminator.", "loss.")
            }
            return out

        monkeypatch.setattr(module, step_name, wrapped)
    teacher_before = {k: v.clone() for k, v in module.teacher.state_dict().items()}
    fit(module)
    g, d = records["_generator_step"], records["_discriminator_step"]
    assert g["student."] and g["loss."] and not g["discriminator."]
    assert d["discriminator."] and not d["student."] and not d["loss."]
    assert all(torch.equal(v, module.teacher.state_dict()[k]) for k, v in teacher_before.items())


def test_gradients_reach_heads_and_temperature_never_the_teacher():
    module = make_module()
    fit(module)
    assert all(p.grad is None for p in module.teacher.parameters())
    assert not any(p.requires_grad for p in module.teacher.parameters())
    cont = module.loss.terms["cont"]
    assert cont.temperature.log_inv_tau.grad is not None
    assert all(p.grad is not None for p in cont.img_head.parameters())
    assert module.teacher.training is False


def test_optimizers_hold_exactly_the_trainable_parameters():
    module = make_module()
    trainer = fit(module)
    g_opt, d_opt = trainer.optimizers
    g_params = {id(p) for group in g_opt.param_groups for p in group["params"]}
    expected = {id(p) for p in module.student.parameters()} | {
        id(p) for p in module.loss.parameters()
    }
    assert g_params == expected
    d_params = {id(p) for group in d_opt.param_groups for p in group["params"]}
    assert d_params == {id(p) for p in module.discriminator.parameters()}
    assert not g_params & {id(p) for p in module.teacher.parameters()}


def test_one_iteration_is_one_step_with_two_optimizers(monkeypatch):
    module = make_module()
    calls = []
    original = module.training_step
    monkeypatch.setattr(module, "training_step", lambda *a: calls.append(1) or original(*a))
    trainer = fit(module, steps=3)
    assert len(calls) == 3 and trainer.global_step == 3


def test_teacher_is_not_in_the_checkpoint_but_loads_back(tmp_path):
    module = make_module()
    trainer = fit(module)
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    checkpoint = torch.load(tmp_path / "run.ckpt", weights_only=True)
    assert not any(k.startswith("teacher.") for k in checkpoint["state_dict"])
    assert any(k.startswith("student.") for k in checkpoint["state_dict"])
    fresh = make_module()
    fresh.load_state_dict(checkpoint["state_dict"])
    assert torch.equal(fresh.student.conv_first.weight, module.student.conv_first.weight)


def test_ema_tracks_the_student_slowly():
    module = make_module(ema=0.9)
    start = module.student_ema.module.conv_first.weight.detach().clone()
    fit(module, steps=2)
    ema = module.student_ema.module.conv_first.weight
    live = module.student.conv_first.weight
    assert not torch.equal(ema, start) and not torch.equal(ema, live)
    assert module.eval_student is module.student_ema.module


def test_configuration_errors():
    loss = WeightedLoss({"resp": {"weight": 1.0, "loss": ResponseKDLoss()}})
    adam = functools.partial(torch.optim.Adam, lr=1e-3)
    with pytest.raises(ValueError, match="no teacher"):
        DistillationModule(EDSR(scale=2, num_feat=8, num_block=1), loss, adam, val_sets=[])
    adv = WeightedLoss({"adv": {"weight": 1.0, "loss": GeneratorAdversarialLoss()}})
    with pytest.raises(ValueError, match="discriminator is null"):
        DistillationModule(EDSR(scale=2, num_feat=8, num_block=1), adv, adam, val_sets=[])
    with pytest.raises(ValueError, match="step_order"):
        make_module(order="random")


@pytest.mark.parametrize(("option", "in_g_step"), [(True, False), (False, True)])
def test_discriminator_mode_during_the_generator_step(option, in_g_step, monkeypatch):
    module = make_module("d_then_g", d_eval_in_generator_step=option)
    step, seen = {"name": None}, []
    module.discriminator.register_forward_hook(
        lambda d, _in, _out: seen.append((step["name"], d.training))
    )
    for name in ("_generator_step", "_discriminator_step"):
        original = getattr(module, name)

        def tagged(ctx, _original=original, _name=name):
            step["name"] = _name
            return _original(ctx)

        monkeypatch.setattr(module, name, tagged)
    fit(module, steps=2)
    g_modes = {training for name, training in seen if name == "_generator_step"}
    d_modes = {training for name, training in seen if name == "_discriminator_step"}
    assert g_modes == {in_g_step}  # the adversarial term read D with the module's D mode
    assert d_modes == {True}  # D trains in train mode either way, also after an eval G step
    assert module.discriminator.training


def test_a_constant_discriminator_learning_rate_without_d_scheduler():
    module = make_module(
        scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
        d_scheduler=None,
    )
    trainer = fit(module, steps=2)
    g_opt, d_opt = trainer.optimizers
    assert g_opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**2)
    assert d_opt.param_groups[0]["lr"] == 1e-3
