import math

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from srdistill.metrics.sr import PSNR, SSIM, psnr_per_image, rgb_to_y, ssim_per_image


def numpy_y(image01: np.ndarray) -> np.ndarray:
    """Direct transcription of MATLAB rgb2ycbcr's Y on 8-bit values (H, W, 3) -> (H, W)."""
    rgb = np.round(np.clip(image01, 0, 1) * 255).astype(np.float64)
    return 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255


def numpy_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. ssim_index with an explicit 11x11 window over every valid position."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def blur(a):
        return (sliding_window_view(a, (11, 11)) * window).sum(axis=(-1, -2))

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(ssim_map.mean())


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.transpose(2, 0, 1).copy()).float()[None]


@pytest.fixture
def pair(photo):
    gt = photo.astype(np.float64) / 255
    rng = np.random.default_rng(0)
    sr = np.clip(gt + rng.normal(0, 0.03, gt.shape), 0, 1)
    return sr, gt


class TestLuma:
    def test_black_and_white_hit_studio_range(self):
        image = torch.tensor([0.0, 255.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1)
        assert rgb_to_y(image).flatten().tolist() == pytest.approx([16.0, 235.0])

    def test_matches_numpy(self, pair):
        sr, _ = pair
        got = rgb_to_y(torch.round(to_tensor(sr).double().clamp(0, 1) * 255))[0, 0].numpy()
        np.testing.assert_allclose(got, numpy_y(sr), atol=1e-10)


class TestPSNR:
    def test_uniform_shift_hand_computed(self):
        gt = torch.full((1, 3, 16, 16), 100 / 255)
        sr = torch.full((1, 3, 16, 16), 103 / 255)
        # a shift of 3 levels on R, G and B moves Y by 3 * 219 / 255
        expected = 10 * math.log10(255**2 / (3 * 219 / 255) ** 2)
        assert psnr_per_image(sr, gt, crop_border=2).item() == pytest.approx(expected, abs=1e-9)
        assert psnr_per_image(sr, gt, 2, "rgb").item() == pytest.approx(10 * math.log10(255**2 / 9))

    def test_border_is_cropped(self):
        gt = torch.full((1, 3, 16, 16), 0.5)
        sr = gt.clone()
        sr[..., :2, :] = 0.0  # damage only the top 2 rows
        assert math.isinf(psnr_per_image(sr, gt, crop_border=2).item())
        assert not math.isinf(psnr_per_image(sr, gt, crop_border=1).item())

    def test_output_is_quantised_like_a_png(self):
        gt = torch.full((1, 3, 16, 16), 128 / 255)
        sr = gt + 0.4 / 255  # rounds back to 128
        assert math.isinf(psnr_per_image(sr, gt, 0).item())

    def test_matches_numpy(self, pair):
        sr, gt = pair
        y_sr, y_gt = numpy_y(sr)[4:-4, 4:-4], numpy_y(gt)[4:-4, 4:-4]
        expected = 10 * np.log10(255**2 / np.mean((y_sr - y_gt) ** 2))
        got = psnr_per_image(to_tensor(sr), to_tensor(gt), 4).item()
        assert got == pytest.approx(expected, abs=1e-9)

    def test_gray_images_on_their_own_values(self):
        gt = torch.full((1, 3, 16, 16), 100 / 255)
        sr = torch.full((1, 3, 16, 16), 103 / 255)
        gray = torch.tensor([True])
        classic = PSNR(0, gray_as_luma=True)
        classic.update(sr, gt, gray)
        assert classic.compute().item() == pytest.approx(10 * math.log10(255**2 / 9))

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="one shape"):
            psnr_per_image(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9), 0)
        with pytest.raises(ValueError, match="crop_border"):
            psnr_per_image(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), 4)
        with pytest.raises(ValueError, match="channel"):
            PSNR(4, channel="ycbcr")


class TestSSIM:
    def test_matches_explicit_window(self, pair):
        sr, gt = pair
        expected = numpy_ssim(numpy_y(sr)[4:-4, 4:-4], numpy_y(gt)[4:-4, 4:-4])
        got = ssim_per_image(to_tensor(sr), to_tensor(gt), 4).item()
        assert got == pytest.approx(expected, abs=1e-12)

    def test_identical_images_score_one(self, pair):
        _, gt = pair
        assert ssim_per_image(to_tensor(gt), to_tensor(gt), 4).item() == pytest.approx(1.0)

    def test_rgb_is_mean_of_channels(self, pair):
        sr, gt = pair
        per_channel = [
            numpy_ssim(np.round(sr[..., c] * 255), np.round(gt[..., c] * 255)) for c in range(3)
        ]
        got = ssim_per_image(to_tensor(sr), to_tensor(gt), 0, "rgb").item()
        assert got == pytest.approx(np.mean(per_channel), abs=1e-12)

    def test_too_small_raises(self):
        with pytest.raises(ValueError, match="11x11"):
            ssim_per_image(torch.zeros(1, 3, 12, 12), torch.zeros(1, 3, 12, 12), 1)


class TestMetricReduction:
    def test_mean_over_images_not_over_pixels(self, pair):
        sr, gt = pair
        a, b = to_tensor(sr), to_tensor(gt)
        worse = (a + 0.1).clamp(0, 1)
        metric = PSNR(4)
        metric.update(a, b)
        metric.update(worse, b)
        per_image = [psnr_per_image(a, b, 4).item(), psnr_per_image(worse, b, 4).item()]
        assert metric.compute().item() == pytest.approx(np.mean(per_image), abs=1e-12)
        assert metric.count.item() == 2

    def test_states_sum_across_processes(self):
        # DDP reduces by summing the states; a mean of means over ranks would be wrong
        assert PSNR(4)._reductions["total"].__name__.endswith("sum")
        assert SSIM(4)._reductions["count"].__name__.endswith("sum")
