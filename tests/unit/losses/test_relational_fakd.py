"""RKD and FAKD on paired taps: hand-computed values, invariances, where the gradients go."""

import math

import pytest
import torch

from srdistill.losses.context import StepContext
from srdistill.losses.fakd import FeatureAffinityLoss
from srdistill.losses.relational import RelationalKDLoss, angle_relation


def context(fs, ft):
    z = torch.zeros(1, 3, 4, 4)
    return StepContext(lq=z, gt=z, sr_s=z, sr_t=z, feats_s={"s": fs}, feats_t={"t": ft})


def rkd(**kwargs):
    return RelationalKDLoss(["s"], ["t"], **kwargs)


def maps(*points):
    """(B, C, 1, 1) feature maps whose flattened embeddings are the given points."""
    return torch.tensor(points, dtype=torch.float32).view(len(points), -1, 1, 1)


def test_rkd_by_hand():
    # student: collinear 0, 1, 2; teacher: an equilateral triangle (all distances equal,
    # every angle 60 degrees). Distances / mean: 0.75 x4, 1.5 x2 vs 1 -> smooth L1 0.0625.
    # Cosines: -1 x2 (middle vertex), 1 x4 vs 0.5 -> (2 * 1.0 + 4 * 0.125) / 6 = 5/12.
    fs = maps([0.0], [1.0], [2.0])
    ft = maps([0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2])
    ctx = context(fs, ft)
    assert rkd(distance_weight=1, angle_weight=0)(ctx).item() == pytest.approx(0.0625, rel=1e-5)
    assert rkd(distance_weight=0, angle_weight=1)(ctx).item() == pytest.approx(5 / 12, rel=1e-5)
    assert rkd()(ctx).item() == pytest.approx(25 * 0.0625 + 50 * 5 / 12, rel=1e-5)


def test_rkd_zero_for_a_similarity_transform_into_more_dimensions():
    torch.manual_seed(0)
    ft = torch.randn(5, 3, 2, 2)
    q, _ = torch.linalg.qr(torch.randn(12, 12))
    emb = 3.0 * ft.flatten(1) @ q.T + torch.randn(12)
    fs = torch.cat([emb, torch.zeros(5, 8)], dim=1).view(5, 5, 2, 2)
    assert rkd()(context(fs, ft)).item() == pytest.approx(0.0, abs=1e-4)


def test_angles_of_a_right_isosceles_triangle():
    # vertices (0,0), (1,0), (0,1): cos 0 at the right angle, cos(45 deg) at the other two
    cos = angle_relation(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    expected = sorted([0.0, 0.0] + [math.sqrt(0.5)] * 4)
    torch.testing.assert_close(cos.sort().values, torch.tensor(expected), atol=1e-6, rtol=0)


def test_rkd_needs_three_images_for_angles():
    assert rkd().min_batch_size == 3 and rkd(angle_weight=0).min_batch_size == 2
    with pytest.raises(ValueError, match="batch_size >= 3"):
        rkd()(context(torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2)))


def test_rkd_pooling_sees_only_the_averaged_map():
    ft = torch.randn(4, 3, 4, 4)
    # a zero-mean pattern in every 2x2 cell, of a different strength per image
    pattern = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(2, 2)
    pooled_equal = ft + torch.tensor([0.0, 1.0, 2.0, 3.0]).view(4, 1, 1, 1) * pattern
    assert rkd(pool_size=2)(context(pooled_equal, ft)).item() == pytest.approx(0.0, abs=1e-5)
    assert rkd()(context(pooled_equal, ft)).item() > 1e-3


def test_fakd_by_hand_on_differently_named_taps():
    # orthogonal student positions (A_s = I), parallel teacher positions (A_t = 1): mean 2/4
    fs = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).view(1, 2, 1, 2)
    ft = torch.tensor([[3.0, 1.0], [0.0, 0.0], [0.0, 0.0]]).view(1, 3, 1, 2)
    loss = FeatureAffinityLoss(["s"], ["t"])
    assert loss.student_taps == ["s"] and loss.teacher_taps == ["t"]
    assert loss(context(fs, ft)).item() == pytest.approx(0.5)


def test_fakd_zero_for_padded_or_rotated_channels():
    ft = torch.randn(2, 4, 5, 5)
    q, _ = torch.linalg.qr(torch.randn(4, 4))
    rotated = torch.einsum("dc,nchw->ndhw", q, ft)
    padded = torch.cat([ft, torch.zeros(2, 3, 5, 5)], dim=1)
    loss = FeatureAffinityLoss(["s"], ["t"], chunk_rows=7)
    for fs in (rotated, padded):
        assert loss(context(fs, ft)).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize(
    "loss", [RelationalKDLoss(["s"], ["t"]), FeatureAffinityLoss(["s"], ["t"], chunk_rows=8)]
)
def test_gradients_reach_the_student_only(loss):
    fs = torch.randn(3, 4, 5, 5, requires_grad=True)
    ft = torch.randn(3, 6, 5, 5, requires_grad=True)  # as if the teacher were not frozen
    loss(context(fs, ft)).backward()
    assert fs.grad is not None and fs.grad.abs().sum() > 0
    assert ft.grad is None
    assert list(loss.parameters()) == []
