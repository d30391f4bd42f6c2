"""Validation scores the network that ships: with adapters and averaging, ``val/`` is the
exported student and ``val_ema/`` (EMA on) or ``val_trained/`` (EMA off) the network as trained."""

import copy
import functools

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from srdistill.lora.inject import LoRASpec
from srdistill.losses.combine import WeightedLoss
from srdistill.losses.pixel import ReconstructionLoss
from srdistill.metrics.sr import PSNR
from srdistill.models.backbones.span import SPAN
from srdistill.module import DistillationModule
from tests.unit.test_module import RandomPairs, fit

TARGETS = [{"pattern": r"block_\d+\.c[123]_r\.eval_conv|conv_2\.eval_conv|upsampler\.0", "rank": 2}]


def make_module(adapters=True, average_weight=0.5, ema=0.5):
    torch.manual_seed(0)
    pretrained = SPAN(scale=2, feature_channels=6)
    student = copy.deepcopy(pretrained)
    if adapters:
        LoRASpec(TARGETS).apply(student)
    return DistillationModule(
        student,
        WeightedLoss({"rec": {"weight": 1.0, "loss": ReconstructionLoss()}}),
        functools.partial(torch.optim.Adam, lr=1e-2),  # 3 steps visibly move the adapters
        val_sets=["S"],
        scale=2,
        ema_decay=ema,
        average_weight=average_weight,
        pretrained_student=pretrained.state_dict() if average_weight is not None else None,
    )


def validate(module) -> dict[str, float]:
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    (logged,) = trainer.validate(module, val_loader(), verbose=False)
    return logged


def val_loader():
    return DataLoader(RandomPairs(), batch_size=4)  # two batches


def psnr_of(network) -> float:
    metric = PSNR(2)
    with torch.no_grad():
        for batch in val_loader():
            metric.update(network(batch["lq"]).float(), batch["gt"], None)
    return float(metric.compute())


def test_val_is_the_exported_student_and_val_ema_the_ema_as_trained():
    module = make_module()
    fit(module, steps=3)
    logged = validate(module)
    assert logged["val/S/psnr_y"] == pytest.approx(psnr_of(module.export_student()), abs=1e-5)
    trained = psnr_of(module.student_ema.module.eval())
    assert logged["val_ema/S/psnr_y"] == pytest.approx(trained, abs=1e-5)
    assert "val_trained/S/psnr_y" not in logged
    # averaging halves the update: a different network, a different score
    assert abs(logged["val/S/psnr_y"] - logged["val_ema/S/psnr_y"]) > 1e-4


def test_without_ema_val_trained_is_the_live_student():
    module = make_module(ema=None)
    fit(module, steps=3)
    logged = validate(module)
    assert logged["val/S/psnr_y"] == pytest.approx(psnr_of(module.export_student()), abs=1e-5)
    trained = psnr_of(copy.deepcopy(module.student).eval())
    assert logged["val_trained/S/psnr_y"] == pytest.approx(trained, abs=1e-5)


def test_the_deployed_copy_is_built_once_per_validation(monkeypatch):
    module = make_module()
    fit(module, steps=1)
    calls = []
    original = module.export_student
    monkeypatch.setattr(module, "export_student", lambda: calls.append(1) or original())
    validate(module)
    validate(module)
    assert len(calls) == 2  # two validations of two batches each
    assert not module.validation._deployed  # and let go after each


def test_a_plain_student_is_validated_once_under_val():
    module = make_module(adapters=False, average_weight=None)
    fit(module, steps=1)
    logged = validate(module)
    assert set(logged) == {"val/S/psnr_y", "val/S/ssim_y"}
    assert logged["val/S/psnr_y"] == pytest.approx(psnr_of(module.student_ema.module), abs=1e-5)
