"""A small residual super-resolution network in plain PyTorch.

Nothing here knows srdistill: distillation reads its intermediate features by module path
(``blocks.1``, ``fuse``: the names ``named_modules()`` gives), so the network needs no tap
methods, base class or registration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with an identity skip."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ResidualSR(nn.Module):
    """RGB on [0, 1] in, RGB upscaled ``scale`` times out: bicubic plus a learned residual.

    head conv -> ``num_block`` residual blocks (``blocks.0`` ...) -> ``fuse`` conv with a skip
    over the blocks -> pixel-shuffle ``upsample`` -> ``tail`` conv. The tail starts at zero, so
    the untrained network is exactly bicubic upsampling and training only has to add detail.
    """

    def __init__(self, scale: int = 4, num_feat: int = 32, num_block: int = 4) -> None:
        super().__init__()
        if scale < 1 or num_feat < 1 or num_block < 1:
            raise ValueError(
                f"ResidualSR needs scale, num_feat and num_block >= 1, got "
                f"{scale}, {num_feat}, {num_block}"
            )
        self.scale = scale
        self.head = nn.Conv2d(3, num_feat, 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlock(num_feat) for _ in range(num_block)))
        self.fuse = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.upsample = nn.Sequential(
            nn.Conv2d(num_feat, num_feat * scale * scale, 3, padding=1), nn.PixelShuffle(scale)
        )
        self.tail = nn.Conv2d(num_feat, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        feat = self.head(x)
        feat = feat + self.fuse(self.blocks(feat))
        return base + self.tail(F.relu(self.upsample(feat)))
