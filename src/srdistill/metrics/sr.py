"""PSNR and SSIM exactly as SR papers report them.

Protocol (RCAN/SwinIR/BasicSR): the SR output is clamped to [0, 1] and quantised to 8 bits (what a
saved PNG holds), both images are converted to BT.601 studio-range luma
``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` on [0, 255] values (unrounded float Y),
``crop_border`` pixels (= scale) are dropped from every side, and the score is computed per image in
float64 and averaged over images. SSIM is Wang et al. 2004 ``ssim_index``: 11x11 Gaussian window,
sigma 1.5, K1 0.01, K2 0.03, L 255, 'valid' filtering, no downsampling.

Gray images: by default every image is treated as RGB (a gray image replicated to three channels,
then converted to Y), which is what modern toolboxes and the papers here do. ``gray_as_luma=True``
reproduces the classic tables, which measured single-channel images on their own gray values.

The metrics are torchmetrics ``Metric``s holding a float64 sum and a count, so under DDP they reduce
by summation and the mean is over all images of all ranks.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

_Y_WEIGHTS = (65.481, 128.553, 24.966)
CHANNEL_MODES = ("y", "rgb")


def quantize_to_uint8_range(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] float image -> float64 values in {0, ..., 255}, as saving to PNG would give."""
    return torch.round(image.detach().to(torch.float64).clamp(0, 1) * 255.0)


def rgb_to_y(image255: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB on [0, 255] -> (B, 1, H, W) studio-range luma on [16, 235]."""
    if image255.ndim != 4 or image255.shape[1] != 3:
        raise ValueError(f"rgb_to_y expects (B, 3, H, W), got {tuple(image255.shape)}")
    weights = image255.new_tensor(_Y_WEIGHTS).view(1, 3, 1, 1)
    return 16.0 + (image255 * weights).sum(dim=1, keepdim=True) / 255.0


def _measured_planes(image: torch.Tensor, channel: str, gray: torch.Tensor | None) -> torch.Tensor:
    """Quantise and convert to the planes the metric is computed on (Y, or the 3 RGB planes)."""
    image255 = quantize_to_uint8_range(image)
    if channel == "rgb":
        return image255
    luma = rgb_to_y(image255)
    if gray is not None and bool(gray.any()):
        own_gray = image255.mean(dim=1, keepdim=True)
        luma = torch.where(gray.view(-1, 1, 1, 1).to(luma.device), own_gray, luma)
    return luma


def _crop(image: torch.Tensor, border: int) -> torch.Tensor:
    if border == 0:
        return image
    return image[..., border:-border, border:-border]


def _measured_pair(sr, gt, crop_border, channel, gray) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images checked, quantised, converted and border-cropped."""
    _check_pair(sr, gt, crop_border, channel)
    x = _crop(_measured_planes(sr, channel, gray), crop_border)
    y = _crop(_measured_planes(gt, channel, gray), crop_border)
    return x, y


def psnr_per_image(
    sr: torch.Tensor,
    gt: torch.Tensor,
    crop_border: int,
    channel: str = "y",
    gray: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image PSNR (B,) in dB of [0, 1] images (B, 3, H, W), paper protocol."""
    x, y = _measured_pair(sr, gt, crop_border, channel, gray)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(255.0**2 / mse)


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _valid_blur(t: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """'valid' correlation of the last two dims with the separable window ``taps x taps``.

    The normalised 11x11 Gaussian is an outer product of two 1-D ones; shifted slices summed in
    float64 are exact and run several times faster than a float64 convolution on CPU.
    """
    n = taps.numel()
    for dim in (-2, -1):
        length = t.shape[dim] - n + 1
        t = sum(taps[k] * t.narrow(dim, k, length) for k in range(n))
    return t


def _ssim_planes(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per (image, plane) of float64 [0, 255] planes (B, P, H, W) -> (B, P)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    taps = _gaussian_1d().to(x.device)
    mu_x, mu_y, xx, yy, xy = _valid_blur(torch.stack([x, y, x * x, y * y, x * y]), taps)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim_map.flatten(2).mean(dim=2)


def ssim_per_image(
    sr: torch.Tensor,
    gt: torch.Tensor,
    crop_border: int,
    channel: str = "y",
    gray: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image SSIM (B,) of [0, 1] images; RGB SSIM is the mean of the per-channel scores."""
    x, y = _measured_pair(sr, gt, crop_border, channel, gray)
    if min(x.shape[-2:]) < 11:
        raise ValueError(
            f"SSIM needs at least 11x11 pixels after cropping, got {tuple(x.shape[-2:])}"
        )
    return _ssim_planes(x, y).mean(dim=1)


def _check_pair(sr: torch.Tensor, gt: torch.Tensor, crop_border: int, channel: str) -> None:
    if channel not in CHANNEL_MODES:
        raise ValueError(f"channel must be one of {CHANNEL_MODES}, got {channel!r}")
    if sr.shape != gt.shape or sr.ndim != 4 or sr.shape[1] != 3:
        raise ValueError(
            f"SR and GT must both be (B, 3, H, W) of one shape, got {tuple(sr.shape)} and "
            f"{tuple(gt.shape)}"
        )
    if crop_border < 0 or 2 * crop_border >= min(sr.shape[-2:]):
        raise ValueError(f"crop_border={crop_border} does not fit images of {tuple(sr.shape[-2:])}")


class _MeanOverImages(Metric):
    """Average of a per-image score; states are a float64 sum and an image count."""

    is_differentiable = False
    full_state_update = False
    higher_is_better = True

    def __init__(
        self, crop_border: int, channel: str = "y", gray_as_luma: bool = False, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if channel not in CHANNEL_MODES:
            raise ValueError(f"channel must be one of {CHANNEL_MODES}, got {channel!r}")
        self.crop_border = crop_border
        self.channel = channel
        self.gray_as_luma = gray_as_luma
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _score(self, sr, gt, gray) -> torch.Tensor:
        raise NotImplementedError

    def update(self, sr: torch.Tensor, gt: torch.Tensor, gray: torch.Tensor | None = None) -> None:
        scores = self._score(sr, gt, gray if self.gray_as_luma else None)
        self.total += scores.sum().to(self.total.device)
        self.count += scores.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count


class PSNR(_MeanOverImages):
    """Mean per-image PSNR (dB) on Y (default) or RGB, border crop, 8-bit quantised SR."""

    def _score(self, sr, gt, gray) -> torch.Tensor:
        return psnr_per_image(sr, gt, self.crop_border, self.channel, gray)


class SSIM(_MeanOverImages):
    """Mean per-image SSIM (Wang et al. 2004) on Y (default) or RGB."""

    def _score(self, sr, gt, gray) -> torch.Tensor:
        return ssim_per_image(sr, gt, self.crop_border, self.channel, gray)
