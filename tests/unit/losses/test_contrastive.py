"""MCAD-KD InfoNCE terms: hand-computed values, the paper/released options, windows, temperature."""

import math

import pytest
import torch
import torch.nn.functional as F

from srdistill.losses.context import StepContext
from srdistill.losses.contrastive import (
    LearnedTemperature,
    MultiScaleContrastiveLoss,
    ProjectionHead,
    crop_windows,
    info_nce,
    patch_info_nce,
    sample_windows,
)


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float64), dim=-1)


class TestInfoNCE:
    def test_hand_computed_with_positive_in_denominator(self):
        a = unit([1.0, 0.0], [0.0, 1.0])
        c = unit([1.0, 0.0], [1.0, 1.0])
        tau = torch.tensor(0.5, dtype=torch.float64)
        s = 1 / math.sqrt(2)  # cos between [1, 0] and [1, 1], and between [0, 1] and [1, 1]
        # anchor 0: positive cos 1, negative cos s; anchor 1: positive cos s, negative cos 0
        expected0 = -math.log(math.exp(1 / 0.5) / (math.exp(1 / 0.5) + math.exp(s / 0.5)))
        expected1 = -math.log(math.exp(s / 0.5) / (math.exp(0 / 0.5) + math.exp(s / 0.5)))
        got = info_nce(a, c, tau, include_positive=True)
        assert got.tolist() == pytest.approx([expected0, expected1], abs=1e-12)

    def test_released_denominator_leaves_the_positive_out(self):
        a = unit([1.0, 0.0], [0.0, 1.0])
        c = unit([1.0, 0.0], [1.0, 1.0])
        tau = torch.tensor(0.5, dtype=torch.float64)
        s = 1 / math.sqrt(2)
        # -log(exp(pos) / exp(neg)) = (neg - pos) / tau with a single negative
        got = info_nce(a, c, tau, include_positive=False)
        assert got.tolist() == pytest.approx([(s - 1) / 0.5, (0 - s) / 0.5], abs=1e-12)

    def test_paper_loss_is_positive_and_released_can_be_negative(self):
        z = unit([1.0, 0.0], [0.0, 1.0])
        tau = torch.tensor(0.07, dtype=torch.float64)
        assert (info_nce(z, z, tau, True) > 0).all()
        assert (info_nce(z, z, tau, False) < 0).all()

    def test_needs_negatives(self):
        with pytest.raises(ValueError, match="at least 2"):
            info_nce(unit([1.0, 0.0]), unit([1.0, 0.0]), torch.tensor(0.1))


class TestPatchInfoNCE:
    def test_negatives_within_image_vs_whole_batch(self):
        torch.manual_seed(0)
        u_s = F.normalize(torch.randn(2, 3, 4, dtype=torch.float64), dim=-1)
        u_t = F.normalize(torch.randn(2, 3, 4, dtype=torch.float64), dim=-1)
        tau = torch.tensor(0.2, dtype=torch.float64)
        per_image = [info_nce(u_s[b], u_t[b], tau).sum() for b in range(2)]
        got = patch_info_nce(u_s, u_t, tau, negatives="image", reduction="sum")
        assert got.item() == pytest.approx(sum(per_image).item() / 2, abs=1e-12)
        batch = info_nce(u_s.reshape(6, 4), u_t.reshape(6, 4), tau).view(2, 3).sum(1).mean()
        assert patch_info_nce(
            u_s, u_t, tau, negatives="batch", reduction="sum"
        ).item() == pytest.approx(batch.item())
        mean = patch_info_nce(u_s, u_t, tau, reduction="mean")
        assert mean.item() == pytest.approx(got.item() / 3)

    def test_bad_options(self):
        u = torch.zeros(1, 2, 3)
        with pytest.raises(ValueError, match="patch_negatives"):
            patch_info_nce(u, u, torch.tensor(1.0), negatives="all")


class TestWindows:
    def test_windows_fit_and_crops_come_from_the_corners(self):
        images = torch.arange(2 * 1 * 10 * 12, dtype=torch.float32).view(2, 1, 10, 12)
        corners = sample_windows(2, 10, 12, count=5, size=4)
        assert corners.shape == (2, 5, 2)
        assert (corners[..., 0] <= 6).all() and (corners[..., 1] <= 8).all()
        crops = crop_windows(images, corners, 4)
        top, left = corners[1, 2].tolist()
        assert torch.equal(crops[5 + 2], images[1, :, top : top + 4, left : left + 4])

    def test_windows_larger_than_the_image_are_refused(self):
        with pytest.raises(ValueError, match="do not fit"):
            sample_windows(1, 40, 40, count=8, size=48)

    def test_same_windows_in_student_and_teacher(self, monkeypatch):
        seen = []
        real_crop = crop_windows

        def spy(images, corners, size):
            seen.append(corners.clone())
            return real_crop(images, corners, size)

        monkeypatch.setattr("srdistill.losses.contrastive.crop_windows", spy)
        sr = torch.rand(2, 3, 32, 32)
        paper = MultiScaleContrastiveLoss(
            img_weight=0, patch_weight=1, dim=8, num_patches=4, patch_size=8
        )
        paper(StepContext(lq=sr, gt=sr, sr_s=sr, sr_t=sr.flip(-1)))
        assert torch.equal(seen[0], seen[1])
        seen.clear()
        released = MultiScaleContrastiveLoss(
            img_weight=0, patch_weight=1, dim=8, num_patches=4, patch_size=8, same_windows=False
        )
        released(StepContext(lq=sr, gt=sr, sr_s=sr, sr_t=sr))
        assert not torch.equal(seen[0], seen[1])


class TestTemperature:
    def test_initial_value_and_bounds(self):
        tau = LearnedTemperature(0.07)
        assert tau().item() == pytest.approx(0.07)
        with torch.no_grad():
            tau.log_inv_tau.fill_(100.0)
        assert tau().item() == pytest.approx(0.01)
        with torch.no_grad():
            tau.log_inv_tau.fill_(-5.0)
        assert tau().item() == pytest.approx(1.0)

    def test_is_learned_and_stays_positive(self):
        loss = MultiScaleContrastiveLoss(dim=8, num_patches=2, patch_size=8)
        sr_s, sr_t = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
        opt = torch.optim.Adam(loss.parameters(), lr=0.05)
        before = loss.temperature().item()
        for _ in range(5):
            opt.zero_grad()
            loss(StepContext(lq=sr_s, gt=sr_s, sr_s=sr_s, sr_t=sr_t)).backward()
            opt.step()
        after = loss.temperature().item()
        assert after != pytest.approx(before) and 0 < after <= 1

    def test_released_mode_freezes_heads_and_tau(self):
        loss = MultiScaleContrastiveLoss(dim=8, learn_heads=False)
        assert not any(p.requires_grad for p in loss.parameters())
        assert loss.temperature().item() == pytest.approx(0.07)


class TestHeadsAndLoss:
    def test_heads_output_unit_vectors(self):
        for depth in ("paper", "released"):
            z = ProjectionHead(16, depth)(torch.rand(4, 3, 12, 12))
            assert z.shape == (4, 16)
            assert torch.allclose(z.norm(dim=-1), torch.ones(4), atol=1e-6)
        assert len(ProjectionHead(16, "released").features) > len(ProjectionHead(16).features)

    def test_paper_head_layout(self):
        head = ProjectionHead(256)
        conv, fc = head.features[0], head.fc
        assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (3, 128, (3, 3))
        assert (fc.in_features, fc.out_features) == (128, 256)

    def test_batch_of_one_is_refused_for_image_level(self):
        loss = MultiScaleContrastiveLoss(dim=8, num_patches=2, patch_size=8)
        sr = torch.rand(1, 3, 16, 16)
        with pytest.raises(ValueError, match="batch size >= 2"):
            loss(StepContext(lq=sr, gt=sr, sr_s=sr, sr_t=sr))

    def test_weighted_sum_of_the_two_scales(self):
        torch.manual_seed(0)
        loss = MultiScaleContrastiveLoss(
            img_weight=0.3, patch_weight=0.7, dim=8, num_patches=2, patch_size=8
        )
        sr_s, sr_t = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
        total = loss(StepContext(lq=sr_s, gt=sr_s, sr_s=sr_s, sr_t=sr_t))
        terms = loss.logged_values()
        assert total.item() == pytest.approx(
            0.3 * terms["img"].item() + 0.7 * terms["patch"].item()
        )

    def test_gradients_reach_student_output_heads_and_tau(self):
        loss = MultiScaleContrastiveLoss(dim=8, num_patches=2, patch_size=8)
        sr_s = torch.rand(2, 3, 16, 16, requires_grad=True)
        sr_t = torch.rand(2, 3, 16, 16)
        loss(StepContext(lq=sr_s, gt=sr_s, sr_s=sr_s, sr_t=sr_t)).backward()
        assert sr_s.grad.abs().sum() > 0
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.parameters())
