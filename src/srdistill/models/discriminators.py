"""Discriminators for adversarial distillation; both return logits.

``UNetDiscriminatorSN``: the U-Net discriminator with spectral normalisation of Real-ESRGAN
(Wang et al. 2021, https://arxiv.org/abs/2107.10833), a per-pixel realness map; the one MCAD-KD's
released code uses. ``VGGStyleDiscriminator``: the ESRGAN-style global classifier, made
input-size-agnostic with an adaptive pool.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class UNetDiscriminatorSN(nn.Module):
    """Three stride-2 downsamplings, three upsamplings with skips; (B, 1, H, W) logits."""

    def __init__(self, in_chans: int = 3, num_feat: int = 64, skip_connection: bool = True):
        super().__init__()
        f = num_feat
        self.skip_connection = skip_connection
        self.conv0 = nn.Conv2d(in_chans, f, 3, padding=1)
        self.conv1 = spectral_norm(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        self.conv4 = spectral_norm(nn.Conv2d(f * 8, f * 4, 3, padding=1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(f * 4, f * 2, 3, padding=1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(f * 2, f, 3, padding=1, bias=False))
        self.conv7 = spectral_norm(nn.Conv2d(f, f, 3, padding=1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(f, f, 3, padding=1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, padding=1)

    def _up(self, x: torch.Tensor, conv: nn.Module, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = F.leaky_relu(conv(x), 0.2)
        return x + skip if self.skip_connection else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = F.leaky_relu(self.conv0(x), 0.2)
        x1 = F.leaky_relu(self.conv1(x0), 0.2)
        x2 = F.leaky_relu(self.conv2(x1), 0.2)
        x3 = F.leaky_relu(self.conv3(x2), 0.2)
        x = self._up(x3, self.conv4, x2)
        x = self._up(x, self.conv5, x1)
        x = self._up(x, self.conv6, x0)
        x = F.leaky_relu(self.conv7(x), 0.2)
        x = F.leaky_relu(self.conv8(x), 0.2)
        return self.conv9(x)


class VGGStyleDiscriminator(nn.Module):
    """Conv stages (stride-2 halving, channels doubling up to 8x), pool, 2-layer MLP -> (B, 1)."""

    def __init__(self, in_chans: int = 3, num_feat: int = 64, num_stages: int = 5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        for stage in range(num_stages):
            out = num_feat * min(2**stage, 8)
            layers += [
                nn.Conv2d(channels, out, 3, padding=1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(out, out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Linear(channels * 16, 100), nn.LeakyReLU(0.2, inplace=True), nn.Linear(100, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
