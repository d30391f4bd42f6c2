"""CSD's contrastive term: hand-computed values, invariances, the frozen VGG-19 and its loader."""

import logging

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from srdistill.cli.builders import build_loss
from srdistill.losses.context import StepContext
from srdistill.losses.csd import (
    CSD_LAYER_WEIGHTS,
    ContrastiveSelfDistillationLoss,
    contrastive_ratio,
    sum_l1_to_negatives,
)
from srdistill.models.checkpoint import CheckpointError
from srdistill.models.vgg import VGG19_SLICE_ENDS, VGG19Features, frozen_vgg19
from tests.helpers.configs import compose_config

OPTION = "loss.terms.cont.loss.vgg19_path"


@pytest.fixture(scope="module")
def csd():
    return ContrastiveSelfDistillationLoss(num_negatives=2)


def context(lq, sr_s, sr_t):
    return StepContext(lq=lq, gt=sr_t, sr_s=sr_s, sr_t=sr_t)


def images(*values, size=4):
    """A batch of constant (1, 3, size, size) images."""
    return torch.stack([torch.full((3, size, size), float(v)) for v in values])


class Copies(nn.Module):
    """A stand-in embedding: the image itself at each of the five layers."""

    def forward(self, x):
        return [x] * 5


def test_ratio_by_hand_with_a_stand_in_embedding():
    # anchors (0,0), (2,2); positives (1,1), (2,2): D_pos = mean(1,1,0,0) = 0.5.
    # negative (2,0): |.| = (2,0),(0,2) -> 1; negative (4,4): (4,4),(2,2) -> 3; D_neg = 4.
    # layer 2 doubles every feature: 1 / 8. Total: 1 * 0.5/4 + 0.5 * 1/8 = 0.1875.
    anchor = torch.tensor([[0.0, 0.0], [2.0, 2.0]]).view(2, 1, 1, 2)
    positive = torch.tensor([[1.0, 1.0], [2.0, 2.0]]).view(2, 1, 1, 2)
    negatives = torch.tensor([[2.0, 0.0], [4.0, 4.0]]).view(2, 1, 1, 2)
    total, d_pos, d_neg = contrastive_ratio(
        lambda x: [x, 2 * x], anchor, positive, negatives, weights=(1.0, 0.5), eps=0.0
    )
    assert [d.item() for d in d_pos] == [0.5, 1.0] and [d.item() for d in d_neg] == [4.0, 8.0]
    assert total.item() == pytest.approx(0.1875)


def test_module_scales_images_and_upsamples_the_first_lr_images(csd):
    # constant images stay constant under bicubic upsampling; x255: D_pos = 0.2 * 255 = 51,
    # D_neg = (0.4 + 0.8) * 255 = 306 on every layer; the weights sum to 47/32
    loss = ContrastiveSelfDistillationLoss(num_negatives=2)
    loss.vgg = Copies()
    lq = images(0.6, 1.0, 5.0, size=2)  # the third LR image is not a negative
    value = loss(context(lq, images(0.2, 0.2, 0.2), images(0.4, 0.4, 0.4)))
    assert value.item() == pytest.approx(sum(CSD_LAYER_WEIGHTS) * 51 / 306, rel=1e-5)
    assert sum(CSD_LAYER_WEIGHTS) == 47 / 32
    assert loss.logged_values()["d_pos"].item() == pytest.approx(47 / 32 * 51, rel=1e-5)


def test_zero_when_the_student_output_is_the_teachers(csd):
    torch.manual_seed(0)
    lq, sr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    assert csd(context(lq, sr, sr.clone())).item() == 0.0
    assert csd(context(lq, torch.rand(2, 3, 16, 16), sr)).item() > 0.0


def test_decreases_as_the_student_moves_to_the_teacher(csd):
    # the SR setting: from the bicubic upsampling of its own LR image (as blurry as a
    # negative) straight to the teacher's output, negatives fixed
    torch.manual_seed(1)
    sr_t = torch.rand(2, 3, 16, 16)
    lq = F.avg_pool2d(sr_t, 2)
    start = F.interpolate(lq, scale_factor=2, mode="bicubic", align_corners=False)
    path = (1.0, 0.75, 0.5, 0.25, 0.1, 0.0)
    values = [csd(context(lq, sr_t + t * (start - sr_t), sr_t)).item() for t in path]
    assert all(a > b for a, b in zip(values, values[1:], strict=False)), values
    assert values[-1] == 0.0


def test_invariant_to_the_order_of_the_negatives():
    torch.manual_seed(2)
    loss = ContrastiveSelfDistillationLoss(num_negatives=3)
    lq, sr_s, sr_t = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
    value = loss(context(lq, sr_s, sr_t))
    shuffled = loss(context(lq[[2, 0, 1]], sr_s, sr_t))  # the anchors stay where they were
    torch.testing.assert_close(shuffled, value, rtol=1e-5, atol=0)


def test_sum_over_negatives_matches_the_broadcast_formula_and_its_gradient():
    torch.manual_seed(3)
    anchor = torch.randn(3, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    negatives = torch.randn(4, 2, 4, 4, dtype=torch.float64)
    direct = (negatives.unsqueeze(1) - anchor.unsqueeze(0)).abs().sum(0).mean()
    (expected,) = torch.autograd.grad(direct, anchor)
    looped = sum_l1_to_negatives(anchor, negatives)
    (grad,) = torch.autograd.grad(looped, anchor)
    torch.testing.assert_close(looped, direct.float())
    torch.testing.assert_close(grad, expected)


def test_gradients_reach_the_student_only(csd):
    torch.manual_seed(4)
    student = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(3, 3, 3, padding=1))
    teacher = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(3, 3, 3, padding=1))
    lq = torch.rand(2, 3, 8, 8, requires_grad=True)
    # the teacher as if it were not frozen: the term must still not send it gradients
    csd(context(lq, student(lq), teacher(lq))).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert lq.grad is not None  # through the student only: the negatives are detached
    assert list(csd.parameters()) == []
    assert not any(b.requires_grad for b in csd.buffers())


def test_vgg_is_not_trainable_state_and_stays_in_eval(csd):
    assert csd.state_dict() == {}  # nothing of the VGG goes into run checkpoints
    csd.train()
    assert not csd.vgg.training
    moved = ContrastiveSelfDistillationLoss(num_negatives=2).double()
    assert {b.dtype for b in moved.buffers()} == {torch.float64}  # buffers follow .to()


def test_batch_smaller_than_the_negatives_raises():
    loss = ContrastiveSelfDistillationLoss()
    assert loss.min_batch_size == 10 and loss.min_hr_patch_size == 16
    assert build_loss(compose_config("train", ["loss=csd"]).loss).min_batch_size == 10
    with pytest.raises(ValueError, match="batch_size >= 10, got 9"):
        loss(context(torch.rand(9, 3, 8, 8), torch.rand(9, 3, 16, 16), torch.rand(9, 3, 16, 16)))


def test_random_embedding_is_fixed_by_its_seed_and_leaves_the_global_stream(caplog):
    state = torch.random.get_rng_state()
    with caplog.at_level(logging.WARNING):
        a, b = frozen_vgg19(seed=5), frozen_vgg19(seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.buffers(), b.buffers(), strict=True))
    c = frozen_vgg19(seed=6)
    assert not torch.equal(next(a.buffers()), next(c.buffers()))
    assert "not comparable to the paper" in caplog.text
    assert ContrastiveSelfDistillationLoss().embedding == "vgg19_random"


def test_layout_matches_torchvision_vgg19_features():
    vgg = pytest.importorskip("torchvision.models.vgg")
    reference = vgg.make_layers(vgg.cfgs["E"])[: VGG19_SLICE_ENDS[-1]]
    ours = VGG19Features().features
    assert [type(m) for m in ours] == [type(m) for m in reference]
    theirs = {k: v.shape for k, v in reference.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == theirs


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_layout_state_dict_round_trips(tmp_path, suffix):
    source = VGG19Features(seed=7)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    # what a full torchvision file also holds: deeper layers and the classifier, ignored
    state.update({"features.30.weight": torch.zeros(1), "classifier.6.bias": torch.zeros(1000)})
    path = tmp_path / f"vgg19{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    loss = ContrastiveSelfDistillationLoss(embedding="vgg19_file", vgg19_path=str(path))
    assert loss.embedding == "vgg19_file"
    loaded = dict(loss.vgg.named_buffers())
    assert set(loaded) == set(source.state_dict())
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    x = torch.rand(1, 3, 16, 16)
    for ours, theirs in zip(loss.vgg(x), source(x), strict=True):
        torch.testing.assert_close(ours, theirs)


def test_weights_file_errors_name_the_option(tmp_path):
    with pytest.raises(CheckpointError, match=f"{OPTION}=.*does not exist"):
        frozen_vgg19("vgg19_file", tmp_path / "none.pth", prefix="loss.terms.cont.loss.")
    with pytest.raises(ValueError, match=f"give {OPTION}=PATH"):
        ContrastiveSelfDistillationLoss(embedding="vgg19_file")
    with pytest.raises(ValueError, match="embedding=vgg19_random ignores it"):
        ContrastiveSelfDistillationLoss(vgg19_path=str(tmp_path / "w.pth"))
    with pytest.raises(ValueError, match="embedding='vgg16'"):
        ContrastiveSelfDistillationLoss(embedding="vgg16")
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "part.pth")
    with pytest.raises(CheckpointError, match="features.0.bias"):
        frozen_vgg19("vgg19_file", tmp_path / "part.pth")


# CSD reads output images only; each pair's student learns through it, its teacher does not
@pytest.mark.parametrize("backbone", ["tiny", "edsr", "rcan", "swinir", "span"])
def test_runs_on_every_backbone_pair(csd, backbone):
    torch.manual_seed(0)
    cfg = compose_config("train", [f"backbone={backbone}", "scale=2"])
    student, teacher = instantiate(cfg.student.arch), instantiate(cfg.teacher.arch).eval()
    lq = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        sr_t = teacher(lq)
    value = csd(context(lq, student(lq), sr_t))
    assert torch.isfinite(value) and value > 0
    value.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
