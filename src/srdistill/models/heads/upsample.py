"""Sub-pixel upsampling tails and mean shifting shared by the EDSR, RCAN and SwinIR families."""

from __future__ import annotations

import torch
from torch import nn

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
