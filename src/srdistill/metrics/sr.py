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

Images may be given as floats on [0, 1] or as uint8 on [0, 255] (already quantised: a quarter of
the memory). Scores are computed in strips of ``STRIP_ROWS`` rows so the float64 planes and SSIM
maps of a large image never exist whole; every per-pixel value is computed exactly as on the whole
image, only the order of the final sum differs (far below 1e-6 dB).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

_Y_WEIGHTS = (65.481, 128.553, 24.966)
CHANNEL_MODES = ("y", "rgb")
STRIP_ROWS = 64
_SSIM_WINDOW = 11


def quantize_to_uint8_range(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] float image (or uint8 image) -> float64 values in {0, ..., 255}, as saving to PNG
    would give."""
    if image.dtype == torch.uint8:
        return image.to(torch.float64)
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


def _measured_strips(sr, gt, crop_border, channel, gray, halo: int = 0):
    """Yield both images' measured planes, ``STRIP_ROWS`` rows at a time after the border crop.

    Each strip also holds the next ``halo`` rows (SSIM's window), so strips of a 'valid' filter
    output tile the whole output exactly. Quantising and converting are per pixel, so cropping
    first and converting strip by strip gives the very same values as converting the whole image.
    """
    _check_pair(sr, gt, crop_border, channel)
    sr, gt = _crop(sr, crop_border), _crop(gt, crop_border)
    height = sr.shape[-2]
    for top in range(0, max(height - halo, 1), STRIP_ROWS):
        rows = slice(top, min(top + STRIP_ROWS + halo, height))
        yield (
            _measured_planes(sr[..., rows, :], channel, gray),
            _measured_planes(gt[..., rows, :], channel, gray),
        )


def psnr_per_image(
    sr: torch.Tensor,
    gt: torch.Tensor,
    crop_border: int,
    channel: str = "y",
    gray: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image PSNR (B,) in dB of [0, 1] (or uint8) images (B, 3, H, W), paper protocol."""
    squared, count = 0.0, 0
    for x, y in _measured_strips(sr, gt, crop_border, channel, gray):
        squared = squared + (x - y).pow(2).flatten(1).sum(dim=1)
        count += x[0].numel()
    return 10.0 * torch.log10(255.0**2 / (squared / count))


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


def _ssim_sums(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum of the SSIM map per (image, plane) of float64 [0, 255] planes (B, P, H, W) -> (B, P)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    taps = _gaussian_1d(_SSIM_WINDOW).to(x.device)
    mu_x, mu_y, xx, yy, xy = _valid_blur(torch.stack([x, y, x * x, y * y, x * y]), taps)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim_map.flatten(2).sum(dim=2)


def ssim_per_image(
    sr: torch.Tensor,
    gt: torch.Tensor,
    crop_border: int,
    channel: str = "y",
    gray: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image SSIM (B,) of [0, 1] (or uint8) images; RGB SSIM is the mean of the per-channel
    scores."""
    _check_pair(sr, gt, crop_border, channel)
    height, width = (n - 2 * crop_border for n in sr.shape[-2:])
    if min(height, width) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {(height, width)}")
    total = 0.0
    for x, y in _measured_strips(sr, gt, crop_border, channel, gray, halo=_SSIM_WINDOW - 1):
        total = total + _ssim_sums(x, y)
    per_plane = total / ((height - _SSIM_WINDOW + 1) * (width - _SSIM_WINDOW + 1))
    return per_plane.mean(dim=1)


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
