"""Sub-pixel upsampling tails and mean shifting shared by the EDSR, RCAN and SwinIR families."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srdistill.data.matlab_bicubic import resize_matrix

SUPPORTED_SCALES = (2, 3, 4, 8)
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


class PixelShuffleUpsample(nn.Sequential):
    """conv (C -> 4C) + PixelShuffle(2) per factor of 2, or conv (C -> 9C) + PixelShuffle(3).

    Layer indices match BasicSR's ``Upsample`` (``upsample.0``, ``upsample.2``, ...), so released
    checkpoints load by name.
    """

    def __init__(self, scale: int, num_feat: int) -> None:
        if scale not in SUPPORTED_SCALES:
            raise ValueError(f"upscale factor {scale} not supported; use one of {SUPPORTED_SCALES}")
        layers: list[nn.Module] = []
        if scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, padding=1), nn.PixelShuffle(3)]
        else:
            for _ in range(scale.bit_length() - 1):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, padding=1), nn.PixelShuffle(2)]
        super().__init__(*layers)


class MeanShift(nn.Module):
    """``(x - mean) * img_range`` and its inverse; the mean is a buffer kept out of state_dict."""

    def __init__(self, img_range: float, rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN):
        super().__init__()
        self.img_range = img_range
        self.register_buffer("mean", torch.tensor(rgb_mean).view(1, 3, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.img_range

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.img_range + self.mean


def _phase_taps(scale: int) -> torch.Tensor:
    """(scale, 7) weights: output pixel ``scale * k + p`` of a 1-D MATLAB bicubic upscaling is
    ``sum_o taps[p, o] * x[k + o - 3]``, read off the resize matrix at an interior position."""
    inner = 8
    matrix = resize_matrix(2 * inner, 2 * inner * scale, float(scale))
    rows = matrix[inner * scale : (inner + 1) * scale]
    taps = rows[:, inner - 3 : inner + 4]
    assert abs(rows.sum() - taps.sum()) < 1e-12, "bicubic upscaling reaches beyond 3 pixels"
    return torch.from_numpy(taps)


def _pad_symmetric(x: torch.Tensor, pad: int) -> torch.Tensor:
    """MATLAB's symmetric padding (the edge pixel repeated) by ``pad`` on every side."""
    x = torch.cat([x[..., :pad].flip(-1), x, x[..., -pad:].flip(-1)], dim=-1)
    return torch.cat([x[..., :pad, :].flip(-2), x, x[..., -pad:, :].flip(-2)], dim=-2)


class MatlabBicubicUpsample(nn.Module):
    """MATLAB ``imresize(x, scale, 'bicubic')`` for an integer ``scale``, as one grouped 7x7
    conv (one output channel per sub-pixel phase) and a pixel shuffle.

    It equals ``srdistill.data.matlab_bicubic.imresize`` on float input (to float rounding) but uses
    only conv and shuffle, so a network containing it traces and exports (TorchScript, ONNX)
    with any input size of at least 3 x 3 pixels. No parameters, nothing in the state dict.
    """

    def __init__(self, scale: int, channels: int = 3) -> None:
        super().__init__()
        taps = _phase_taps(scale)
        kernel = torch.einsum("ia,jb->ijab", taps, taps).reshape(scale * scale, 1, 7, 7)
        self.scale, self.channels = scale, channels
        self.register_buffer("kernel", kernel.float().repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.kernel.to(x.dtype)
        y = F.conv2d(_pad_symmetric(x, 3), weight, groups=self.channels)
        return F.pixel_shuffle(y, self.scale)
