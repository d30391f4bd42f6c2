"""Spatial-affinity distillation: hand-computed values, channel invariance, exact chunking."""

import pytest
import torch

from srdistill.losses.affinity import (
    AlignedFeatureLoss,
    SpatialAffinityLoss,
    affinity_l1,
    spatial_affinity,
)
from srdistill.losses.context import StepContext


def positions(*vectors):
    """A (1, C, 1, P) feature map whose P positions carry the given channel vectors."""
    return torch.tensor(vectors, dtype=torch.float32).T.reshape(1, len(vectors[0]), 1, -1)


def test_affinity_by_hand():
    # orthogonal positions: A_s = I; parallel positions: A_t = all ones -> mean |diff| = 2/4
    fs, ft = positions([1.0, 0.0], [0.0, 2.0]), positions([3.0, 0.0], [1.0, 0.0])
    torch.testing.assert_close(spatial_affinity(fs)[0], torch.eye(2))
    assert affinity_l1(fs, ft).item() == pytest.approx(0.5)


def test_zero_for_identical_features():
    f = torch.randn(2, 5, 6, 7)
    assert affinity_l1(f, f.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_invariant_to_channel_count_and_per_position_scale():
    f = torch.randn(2, 4, 5, 5)
    padded = torch.cat([f, torch.zeros(2, 3, 5, 5)], dim=1)  # 7 channels, same geometry
    rescaled = f * torch.rand(2, 1, 5, 5).add(0.5)
    repeated = torch.cat([f, f], dim=1)
    for other in (padded, rescaled, repeated):
        assert affinity_l1(f, other).item() == pytest.approx(0.0, abs=1e-6)


def test_chunked_equals_full_in_value_and_gradient():
    fs = torch.randn(2, 6, 5, 7, requires_grad=True)
    ft = torch.randn(2, 9, 5, 7)
    full = (spatial_affinity(fs) - spatial_affinity(ft)).abs().mean()
    (grad_full,) = torch.autograd.grad(full, fs)
    chunked = affinity_l1(fs, ft, chunk_rows=4)  # 35 positions: blocks of 4, last of 3
    (grad_chunked,) = torch.autograd.grad(chunked, fs)
    torch.testing.assert_close(chunked, full)
    torch.testing.assert_close(grad_chunked, grad_full)


def test_spatial_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match="spatial size"):
        affinity_l1(torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 5))


def context(feats_s, feats_t):
    z = torch.zeros(1, 3, 4, 4)
    return StepContext(lq=z, gt=z, sr_s=z, sr_t=z, feats_s=feats_s, feats_t=feats_t)


def test_loss_sums_layers_and_never_reaches_the_teacher():
    taps = ["block_1", "block_2"]
    fs = {t: torch.randn(2, 4, 6, 6, requires_grad=True) for t in taps}
    ft = {t: torch.randn(2, 5, 6, 6, requires_grad=True) for t in taps}
    loss = SpatialAffinityLoss(taps, chunk_rows=7)(context(fs, ft))
    expected = sum(affinity_l1(fs[t], ft[t]) for t in taps)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(fs[t].grad.abs().sum() > 0 for t in taps)
    assert all(ft[t].grad is None for t in taps)


def test_aligned_feature_loss_trains_the_alignment_not_the_teacher():
    term = AlignedFeatureLoss(["block_1"], student_channels=4, teacher_channels=6)
    fs = {"block_1": torch.randn(1, 4, 5, 5, requires_grad=True)}
    ft = {"block_1": torch.randn(1, 6, 5, 5, requires_grad=True)}
    term(context(fs, ft)).backward()
    assert term.align[0].weight.grad.abs().sum() > 0 and fs["block_1"].grad.abs().sum() > 0
    assert ft["block_1"].grad is None
