"""DUKD's zoom-in and zoom-out terms: zeros, hand-computed values, where the gradients go."""

import copy

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from srdistill.cli.builders import build_loss
from srdistill.losses.combine import WeightedLoss
from srdistill.losses.context import StepContext
from srdistill.losses.dukd import ZoomInLoss, ZoomOutLoss
from srdistill.losses.pixel import ReconstructionLoss, ResponseKDLoss
from srdistill.models.backbones.edsr import EDSR
from tests.helpers.configs import compose_config


class Upscale(nn.Module):
    """``gain * nearest(x)``: commutes with flips and transposes, so only the gain differs."""

    def __init__(self, scale, gain=1.0):
        super().__init__()
        self.scale = scale
        self.gain = nn.Parameter(torch.tensor(float(gain)))

    def forward(self, x):
        return self.gain * F.interpolate(x, scale_factor=self.scale, mode="nearest")


def context(lq, gt, student, teacher):
    return StepContext(lq=lq, gt=gt, sr_s=gt, student=student, teacher=teacher)


def test_zoom_in_is_zero_for_a_copy_of_the_teacher_without_augmentation():
    torch.manual_seed(0)
    teacher = EDSR(scale=2, num_feat=8, num_block=1)
    lq, gt = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 12, 12)
    ctx = context(lq, gt, copy.deepcopy(teacher), teacher)
    assert ZoomInLoss(scale=2, n_sub=4, p=0.0)(ctx).item() == 0.0


def test_zoom_in_is_zero_under_every_augmentation_for_an_equivariant_copy():
    # 1 - x, flips and transposes all commute with nearest upscaling: undone right, no error
    # (the released same-order "inverse" leaves a 180-degree rotation here)
    gt = torch.rand(8, 3, 8, 8)
    ctx = context(gt[..., :4, :4], gt, Upscale(2), Upscale(2))
    assert ZoomInLoss(scale=2, n_sub=4, p=1.0)(ctx).item() == 0.0
    torch.manual_seed(0)
    assert ZoomInLoss(scale=2, n_sub=2, p=0.5)(ctx).item() == pytest.approx(0.0, abs=1e-7)


def test_zoom_in_by_hand():
    # constant HR 0.4; teacher = nearest x2, student = 1.5 x nearest x2.
    # p = 0: |1.5 * 0.4 - 0.4| = 0.2. p = 1 (inversion included): the student sees 0.6,
    # answers 0.9, inverted 1 - 0.9 = 0.1 against the teacher's 0.4: 0.3.
    gt = torch.full((2, 3, 8, 8), 0.4)
    ctx = context(gt[..., :4, :4], gt, Upscale(2, gain=1.5), Upscale(2))
    assert ZoomInLoss(scale=2, p=0.0)(ctx).item() == pytest.approx(0.2, rel=1e-6)
    assert ZoomInLoss(scale=2, p=1.0)(ctx).item() == pytest.approx(0.3, rel=1e-6)


def test_zoom_out_by_hand():
    # constant LR 0.4 shrinks to constant 0.4 (bicubic rows sum to one); the student answers
    # 0.6 against the input 0.4 (rec 0.2) and the teacher's 0.4 (kd 0.2): 5 * 0.2 + 1 * 0.2
    lq = torch.full((2, 3, 8, 8), 0.4)
    ctx = context(lq, lq, Upscale(2, gain=1.5), Upscale(2))
    term = ZoomOutLoss(scale=2, rec_weight=5.0, kd_weight=1.0)
    assert term(ctx).item() == pytest.approx(1.2, rel=1e-5)
    assert term.logged_values()["rec"].item() == pytest.approx(0.2, rel=1e-5)
    assert term.logged_values()["kd"].item() == pytest.approx(0.2, rel=1e-5)


def test_zoom_out_output_has_the_input_shape():
    torch.manual_seed(0)
    student = EDSR(scale=3, num_feat=8, num_block=1)
    lq = torch.rand(2, 3, 12, 12)
    seen = []
    student.register_forward_hook(lambda _m, _in, out: seen.append(out.shape))
    ZoomOutLoss(scale=3)(context(lq, lq, student, EDSR(scale=3, num_feat=8, num_block=1)))
    assert seen == [lq.shape]


def test_gradients_reach_the_student_never_the_teacher():
    torch.manual_seed(0)
    student = EDSR(scale=2, num_feat=8, num_block=1)
    teacher = EDSR(scale=2, num_feat=12, num_block=1)  # trainable on purpose: no_grad must hold
    lq, gt = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    ctx = context(lq, gt, student, teacher)
    (ZoomInLoss(scale=2, p=0.5)(ctx) + ZoomOutLoss(scale=2)(ctx)).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())


def test_configuration_errors():
    with pytest.raises(ValueError, match="n_sub"):
        ZoomInLoss(scale=2, n_sub=5)
    with pytest.raises(ValueError, match="p must"):
        ZoomInLoss(scale=2, p=-0.1)
    with pytest.raises(ValueError, match="scale"):
        ZoomOutLoss(scale=1)


def _terms(**weights):
    kinds = {"rec": ReconstructionLoss, "resp": ResponseKDLoss}
    return {name: {"weight": w, "loss": kinds[name]()} for name, w in weights.items()}


def test_step_groups_are_checked_and_drop_unweighted_terms():
    loss = WeightedLoss(_terms(rec=1.0, resp=0.0), step_groups=[["rec"], ["resp"]])
    assert loss.step_groups == [["rec"]]
    assert WeightedLoss(_terms(rec=1.0, resp=1.0)).step_groups == [["rec", "resp"]]
    with pytest.raises(ValueError, match=r"\['zoom'\].*not in loss.terms"):
        WeightedLoss(_terms(rec=1.0), step_groups=[["rec"], ["zoom"]])
    with pytest.raises(ValueError, match=r"missing: \['resp'\]"):
        WeightedLoss(_terms(rec=1.0, resp=1.0), step_groups=[["rec"]])
    with pytest.raises(ValueError, match=r"repeated: \['rec'\]"):
        WeightedLoss(_terms(rec=1.0, resp=1.0), step_groups=[["rec", "resp"], ["rec"]])


def test_the_config_is_the_two_step_edsr_default():
    cfg = compose_config("train", ["loss=dukd", "scale=3"])
    loss = build_loss(cfg.loss)
    assert loss.step_groups == [["rec", "resp"], ["zoom_in", "zoom_out"]]
    assert loss.weights == {"rec": 5.0, "resp": 1.0, "zoom_in": 1.0, "zoom_out": 1.0}
    zoom_in, zoom_out = loss.terms["zoom_in"], loss.terms["zoom_out"]
    assert (zoom_in.scale, zoom_in.n_sub, zoom_in.p) == (3, 1, 0.3)
    assert (zoom_out.rec_weight, zoom_out.kd_weight) == (5.0, 1.0)
    rcan = build_loss(
        compose_config(
            "train", ["loss=dukd", "loss.lambda_rec=1", "loss.terms.zoom_out.weight=0"]
        ).loss
    )
    assert rcan.weights == {"rec": 1.0, "resp": 1.0, "zoom_in": 1.0}
    assert rcan.step_groups == [["rec", "resp"], ["zoom_in"]]


# the spec's uniform per-backbone defaults (Sec. 8), read from each backbone's dukd block
@pytest.mark.parametrize(
    ("backbone", "lambda_rec", "zoom_out"),
    [("edsr", 5.0, True), ("rcan", 1.0, False), ("swinir", 5.0, False)],
)
def test_each_table_backbone_gets_its_released_values(backbone, lambda_rec, zoom_out):
    loss = build_loss(compose_config("train", [f"backbone={backbone}", "loss=dukd"]).loss)
    assert loss.weights["rec"] == lambda_rec
    assert ("zoom_out" in loss.weights) is zoom_out


# the sample teacher is x4 only; the others are built at x2 to keep the forward small
@pytest.mark.parametrize(
    ("backbone", "scale"),
    [("tiny", 2), ("edsr", 2), ("rcan", 2), ("swinir", 2), ("span", 2)],
)
def test_both_terms_run_on_every_backbone_pair(backbone, scale):
    torch.manual_seed(0)
    overrides = [f"backbone={backbone}", f"scale={scale}", "loss=dukd"]
    cfg = compose_config("train", [*overrides, "loss.terms.zoom_out.weight=1"])
    student, teacher = instantiate(cfg.student.arch), instantiate(cfg.teacher.arch).eval()
    # LR 16: zoom-out gives 8 x 8, a whole SwinIR window (smaller inputs are reflect-padded
    # up to the window, which needs more pixels than the padding)
    lq, gt = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16 * scale, 16 * scale)
    loss = build_loss(cfg.loss)
    ctx = context(lq, gt, student, teacher)
    for name in ("zoom_in", "zoom_out"):
        value = loss.terms[name](ctx)
        assert torch.isfinite(value) and value > 0, (name, value)
