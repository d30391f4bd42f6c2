"""RCAN (Zhang et al. 2018, https://arxiv.org/abs/1807.02758) in BasicSR's layout.

Residual groups of residual channel-attention blocks (RCAB) with long and short skips. Key names
follow BasicSR (``body.{g}.residual_group.{b}.rcab.{0,2}``, ``rcab.3.attention.{1,3}``,
``body.{g}.conv``, ``conv_after_body``); note BasicSR's class defaults to 16 blocks per group where
RCAN uses 20. Inputs are RGB on [0, 1]; internally ``(x - mean) * 255``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from srdistill.models.argument_checks import CNN_ARGS, SIZE
from srdistill.models.heads.upsample import DIV2K_RGB_MEAN, MeanShift, PixelShuffleUpsample
from srdistill.models.shapes import count_keys, pixel_shuffle_scale
from srdistill.models.taps import Recorder, TappableBackbone
from srdistill.models.variants import Family, Variant


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: global pool, 1x1 down, ReLU, 1x1 up, sigmoid gate."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, num_feat // squeeze_factor, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class RCAB(nn.Module):
    """Residual channel-attention block: ``x + res_scale * CA(conv(act(conv(x))))``."""

    def __init__(
        self,
        num_feat: int,
        squeeze_factor: int = 16,
        res_scale: float = 1.0,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.rcab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, padding=1),
            act_layer(),
            nn.Conv2d(num_feat, num_feat, 3, padding=1),
            ChannelAttention(num_feat, squeeze_factor),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.rcab(x) * self.res_scale


class ResidualGroup(nn.Module):
    """``num_block`` RCABs and a conv, wrapped in a skip connection."""

    def __init__(
        self,
        num_feat: int,
        num_block: int,
        squeeze_factor: int = 16,
        res_scale: float = 1.0,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.residual_group = nn.Sequential(
            *[RCAB(num_feat, squeeze_factor, res_scale, act_layer) for _ in range(num_block)]
        )
        self.conv = nn.Conv2d(num_feat, num_feat, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.residual_group(x))


class RCAN(TappableBackbone):
    """RCAN; taps ``body.{g}`` (each residual group) and ``body`` (trunk + long skip)."""

    def __init__(
        self,
        scale: int = 4,
        num_feat: int = 64,
        num_group: int = 10,
        num_block: int = 20,
        squeeze_factor: int = 16,
        res_scale: float = 1.0,
        img_range: float = 255.0,
        rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN,
        in_chans: int = 3,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.shift = MeanShift(img_range, tuple(rgb_mean))
        self.conv_first = nn.Conv2d(in_chans, num_feat, 3, padding=1)
        self.body = nn.Sequential(
            *[
                ResidualGroup(num_feat, num_block, squeeze_factor, res_scale, act_layer)
                for _ in range(num_group)
            ]
        )
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.upsample = PixelShuffleUpsample(scale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, in_chans, 3, padding=1)
        self.tap_names = tuple(f"body.{g}" for g in range(num_group)) + ("conv_after_body", "body")

    def _forward(self, x: torch.Tensor, record: Recorder) -> torch.Tensor:
        shallow = self.conv_first(self.shift.normalize(x))
        feat = shallow
        for g, group in enumerate(self.body):
            feat = record(f"body.{g}", group(feat))
        # conv_after_body: the body's output before the global skip (the feature-KD papers' tap)
        feat = record("conv_after_body", self.conv_after_body(feat)) + shallow
        feat = record("body", feat)
        return self.shift.denormalize(self.conv_last(self.upsample(feat)))


def rcan_teacher(scale: int = 4, **kwargs) -> RCAN:
    """RCAN: 10 groups x 20 RCABs, 64 channels; 15.59 M parameters at x4."""
    return RCAN(scale=scale, **{"num_group": 10, "num_block": 20, **kwargs})


def rcan_student(scale: int = 4, **kwargs) -> RCAN:
    """MCAD-KD's RCAN student: 10 groups x 6 RCABs, 64 channels; 5.17 M parameters at x4."""
    return RCAN(scale=scale, **{"num_group": 10, "num_block": 6, **kwargs})


def read_shapes(state: Mapping[str, torch.Tensor]) -> dict | None:
    """RCAN's sizes from BasicSR-layout weights; None for another network."""
    if "body.0.residual_group.0.rcab.0.weight" not in state:
        return None
    num_feat, in_chans = state["conv_first.weight"].shape[:2]
    squeezed = state["body.0.residual_group.0.rcab.3.attention.1.weight"].shape[0]
    return {
        "scale": pixel_shuffle_scale(state, "upsample", num_feat),
        "num_feat": num_feat,
        "num_group": count_keys(state, r"body\.\d+\.conv\.weight"),
        "num_block": count_keys(state, r"body\.0\.residual_group\.\d+\.rcab\.0\.weight"),
        "squeeze_factor": num_feat // squeezed,
        "in_chans": in_chans,
    }


ARGUMENTS = {**CNN_ARGS, "num_group": SIZE, "squeeze_factor": SIZE}
# the first variant takes any size
FAMILY = Family(
    name="rcan",
    read_shapes=read_shapes,
    variants=(
        Variant("rcan_student", rcan_student, ARGUMENTS),
        Variant("rcan_teacher", rcan_teacher, ARGUMENTS),
    ),
)
