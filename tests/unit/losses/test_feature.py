"""FitNet and attention transfer on paired taps: minima, hand-computed values, invariances,
and where the gradients go."""

import pytest
import torch

from srdistill.losses.context import StepContext
from srdistill.losses.feature import AttentionTransferLoss, FitNetLoss, attention_map


def context(feats_s, feats_t):
    z = torch.zeros(1, 3, 4, 4)
    return StepContext(lq=z, gt=z, sr_s=z, sr_t=z, feats_s=feats_s, feats_t=feats_t)


def identity_fitnet(channels, **kwargs):
    loss = FitNetLoss(["a"], ["b"], channels, channels, **kwargs)
    with torch.no_grad():
        reg = loss.regressors[0]
        reg.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
        reg.bias.zero_()
    return loss


def test_pairs_need_the_same_number_of_taps():
    with pytest.raises(ValueError, match="same non-zero number"):
        FitNetLoss(["a", "b"], ["a"], 4, 4)
    with pytest.raises(ValueError, match="same non-zero number"):
        AttentionTransferLoss([], [])


def test_fitnet_identity_regressor_is_zero_on_equal_features():
    f = torch.randn(2, 4, 5, 5)
    loss = identity_fitnet(4, feature_scale=255.0)
    assert loss(context({"a": f}, {"b": f.clone()})).item() == pytest.approx(0.0, abs=1e-7)


def test_fitnet_by_hand():
    # identity regressor, student 0, teacher 510 everywhere, scale 255: mean |0 - 2| = 2 per pair
    fs, ft = torch.zeros(1, 2, 3, 3), torch.full((1, 2, 3, 3), 510.0)
    loss = identity_fitnet(2, feature_scale=255.0)
    assert loss(context({"a": fs}, {"b": ft})).item() == pytest.approx(2.0)
    # two pairs sum; channel means: student mean_c = 1.5, teacher 0 -> 1.5 per pair
    two = FitNetLoss(["a", "c"], ["b", "d"], 2, 3, mode="channel_mean")
    fs2 = torch.stack([torch.ones(3, 3), torch.full((3, 3), 2.0)]).unsqueeze(0)
    zero = torch.zeros(1, 3, 3, 3)
    ctx = context({"a": fs2, "c": fs2}, {"b": zero, "d": zero})
    assert two(ctx).item() == pytest.approx(3.0)
    assert len(two.regressors) == 0


def test_fitnet_channel_mean_ignores_channel_order():
    fs, ft = torch.randn(2, 6, 4, 4), torch.randn(2, 3, 4, 4)
    loss = FitNetLoss(["a"], ["b"], 6, 3, mode="channel_mean")
    base = loss(context({"a": fs}, {"b": ft}))
    permuted = loss(context({"a": fs[:, torch.randperm(6)]}, {"b": ft[:, torch.randperm(3)]}))
    torch.testing.assert_close(base, permuted)


def test_fitnet_regressor_maps_student_to_teacher_channels():
    loss = FitNetLoss(["a", "c"], ["b", "d"], 5, 7, kernel_size=3)
    assert [tuple(r.weight.shape) for r in loss.regressors] == [(7, 5, 3, 3)] * 2
    fs, ft = torch.randn(1, 5, 6, 6), torch.randn(1, 7, 6, 6)
    assert loss(context({"a": fs, "c": fs}, {"b": ft, "d": ft})).ndim == 0
    with pytest.raises(ValueError, match="odd kernel_size"):
        FitNetLoss(["a"], ["b"], 5, 7, kernel_size=2)


@pytest.mark.parametrize(
    "make",
    [
        lambda: FitNetLoss(["a"], ["b"], 4, 6),
        lambda: FitNetLoss(["a"], ["b"], 4, 6, mode="channel_mean"),
        lambda: AttentionTransferLoss(["a"], ["b"]),
        lambda: AttentionTransferLoss(["a"], ["b"], mode="original"),
    ],
)
def test_gradients_reach_the_student_and_the_term_only(make):
    loss = make()
    fs = torch.randn(2, 4, 5, 5, requires_grad=True)
    ft = torch.randn(2, 6, 5, 5, requires_grad=True)  # as if the teacher were not frozen
    loss(context({"a": fs}, {"b": ft})).backward()
    assert fs.grad is not None and fs.grad.abs().sum() > 0
    assert ft.grad is None
    for p in loss.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_attention_map_by_hand_and_unit_norm():
    # channel vectors (3, 4) and (0, 0) at two positions: energies 25 and 0 -> map (1, 0)
    f = torch.tensor([[3.0, 0.0], [4.0, 0.0]]).view(1, 2, 1, 2)
    torch.testing.assert_close(attention_map(f), torch.tensor([[[1.0, 0.0]]]), atol=1e-6, rtol=0)
    maps = attention_map(torch.randn(3, 8, 5, 6))
    torch.testing.assert_close(maps.flatten(1).norm(dim=1), torch.ones(3), atol=1e-5, rtol=0)


def test_attention_map_invariances():
    f = torch.randn(2, 6, 5, 5)
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0, 1.0]).view(1, 6, 1, 1)
    for other in (3.5 * f, f[:, torch.randperm(6)], f * signs):
        torch.testing.assert_close(attention_map(other), attention_map(f), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", ["sr", "original"])
def test_at_zero_for_a_channel_permutation(mode):
    ft = torch.randn(2, 6, 5, 5)
    fs = ft[:, torch.randperm(6)]
    loss = AttentionTransferLoss(["a"], ["b"], mode=mode)
    assert loss(context({"a": fs}, {"b": ft})).item() == pytest.approx(0.0, abs=1e-7)


def test_at_by_hand():
    # 1x2 maps: student energies (25, 0) -> (1, 0); teacher (1, 1) -> (1, 1)/sqrt2
    fs = torch.tensor([[3.0, 0.0], [4.0, 0.0]]).view(1, 2, 1, 2)
    ft = torch.ones(1, 1, 1, 2)
    r = 2**-0.5
    sr = AttentionTransferLoss(["a"], ["b"])(context({"a": fs}, {"b": ft}))
    assert sr.item() == pytest.approx(((1 - r) + r) / 2, rel=1e-5)
    orig = AttentionTransferLoss(["a"], ["b"], mode="original")(context({"a": fs}, {"b": ft}))
    assert orig.item() == pytest.approx(((1 - r) ** 2 + r**2) / 2, rel=1e-5)


def test_a_tap_that_gives_tokens_is_named_in_one_line():
    # a module path into a transformer block gives (B, L, C) tokens, not an image
    tokens, image = torch.rand(2, 16, 8), torch.rand(2, 8, 4, 4)
    loss = AttentionTransferLoss(["layers.0.blocks.0"], ["body.0"])
    with pytest.raises(ValueError, match=r"kd_taps.student layers.0.blocks.0 gives a 3-D feature"):
        loss(context({"layers.0.blocks.0": tokens}, {"body.0": image}))
