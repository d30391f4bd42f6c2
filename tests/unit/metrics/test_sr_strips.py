"""The metrics computed in row strips give the whole-image values; uint8 input equals float."""

import numpy as np
import pytest
import torch

import srdistill.metrics.sr as sr_module
from srdistill.metrics.sr import psnr_per_image, ssim_per_image
from tests.unit.metrics.test_sr import numpy_ssim, numpy_y, to_tensor


@pytest.fixture
def pair(photo):
    gt = photo.astype(np.float64) / 255
    sr = np.clip(gt + np.random.default_rng(1).normal(0, 0.03, gt.shape), 0, 1)
    return sr, gt


@pytest.mark.parametrize("strip_rows", [1, 7, 40, 10_000])
def test_strips_match_whole_image_reference(pair, monkeypatch, strip_rows):
    # 96 rows, border 4: 88 measured rows, 78 SSIM rows; 7 divides neither (a ragged last strip)
    monkeypatch.setattr(sr_module, "STRIP_ROWS", strip_rows)
    sr, gt = pair
    y_sr, y_gt = numpy_y(sr)[4:-4, 4:-4], numpy_y(gt)[4:-4, 4:-4]
    psnr = 10 * np.log10(255**2 / np.mean((y_sr - y_gt) ** 2))
    assert psnr_per_image(to_tensor(sr), to_tensor(gt), 4).item() == pytest.approx(psnr, abs=1e-9)
    ssim = numpy_ssim(y_sr, y_gt)
    assert ssim_per_image(to_tensor(sr), to_tensor(gt), 4).item() == pytest.approx(ssim, abs=1e-12)
    rgb = ssim_per_image(to_tensor(sr), to_tensor(gt), 4, "rgb").item()
    per_channel = [
        numpy_ssim(np.round(sr[4:-4, 4:-4, c] * 255), np.round(gt[4:-4, 4:-4, c] * 255))
        for c in range(3)
    ]
    assert rgb == pytest.approx(np.mean(per_channel), abs=1e-12)


def test_uint8_images_score_as_their_float_versions(pair):
    sr, gt = (to_tensor(a) for a in pair)
    sr8, gt8 = (torch.round(t.double().clamp(0, 1) * 255).to(torch.uint8) for t in (sr, gt))
    gray = torch.tensor([True])
    for channel in ("y", "rgb"):
        for metric in (psnr_per_image, ssim_per_image):
            floats = metric(sr, gt, 4, channel, gray)
            assert torch.equal(metric(sr8, gt8, 4, channel, gray), floats)
            assert torch.equal(metric(sr8, gt, 4, channel, gray), floats)
