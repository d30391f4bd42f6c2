"""EDSR (Lim et al. 2017, https://arxiv.org/abs/1707.02921) in BasicSR's layout.

Residual blocks without batch norm, a global skip over the body, and a sub-pixel tail. Key names
follow BasicSR (``conv_first``, ``body.{i}.conv1``, ``conv_after_body``, ``upsample.*``,
``conv_last``), the format MCAD-KD's code and BasicSR's converted official weights use; the
official EDSR-PyTorch names are converted on load by ``srdistill.models.checkpoint``.
Inputs are RGB on [0, 1]; internally ``(x - mean) * 255`` as in the released models.

``bicubic_skip=True`` adds the input's MATLAB-bicubic upscaling to the output and starts the last
conv at zero, so the untrained network is exactly bicubic and learns only the missing detail (as
VDSR and many efficient SR networks do); it adds no parameters and changes no key names.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from srdistill.models.argument_checks import CNN_ARGS, flag
from srdistill.models.heads.upsample import (
    DIV2K_RGB_MEAN,
    MatlabBicubicUpsample,
    MeanShift,
    PixelShuffleUpsample,
)
from srdistill.models.shapes import count_keys, pixel_shuffle_scale
from srdistill.models.taps import Recorder, TappableBackbone
from srdistill.models.variants import Family, Variant


class ResidualBlockNoBN(nn.Module):
    """conv-act-conv with a scaled residual: ``x + res_scale * body(x)``."""

    def __init__(self, num_feat: int, res_scale: float = 1.0, act_layer: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.act = act_layer()
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x))) * self.res_scale


class EDSR(TappableBackbone):
    """EDSR; taps ``body.{i}`` (each residual block) and ``body`` (trunk + global skip)."""

    def __init__(
        self,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 16,
        res_scale: float = 1.0,
        img_range: float = 255.0,
        rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN,
        in_chans: int = 3,
        act_layer: type[nn.Module] = nn.ReLU,
        bicubic_skip: bool = False,
    ) -> None:
        super().__init__()
        self.scale, self.bicubic_skip = scale, bicubic_skip
        self.shift = MeanShift(img_range, tuple(rgb_mean))
        self.conv_first = nn.Conv2d(in_chans, num_feat, 3, padding=1)
        self.body = nn.Sequential(
            *[ResidualBlockNoBN(num_feat, res_scale, act_layer) for _ in range(num_block)]
        )
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.upsample = PixelShuffleUpsample(scale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, in_chans, 3, padding=1)
        self.tap_names = tuple(f"body.{i}" for i in range(num_block)) + ("conv_after_body", "body")
        self.bicubic = MatlabBicubicUpsample(scale, in_chans) if bicubic_skip else None
        if bicubic_skip:
            nn.init.zeros_(self.conv_last.weight)
            nn.init.zeros_(self.conv_last.bias)

    def _forward(self, x: torch.Tensor, record: Recorder) -> torch.Tensor:
        shallow = self.conv_first(self.shift.normalize(x))
        feat = shallow
        for i, block in enumerate(self.body):
            feat = record(f"body.{i}", block(feat))
        # conv_after_body: the body's output before the global skip (the feature-KD papers' tap)
        feat = record("conv_after_body", self.conv_after_body(feat)) + shallow
        feat = record("body", feat)
        out = self.conv_last(self.upsample(feat))
        if self.bicubic is not None:
            return self.bicubic(x) + out / self.shift.img_range
        return self.shift.denormalize(out)


def edsr_teacher(scale: int = 4, **kwargs) -> EDSR:
    """EDSR (full): 256 channels, 32 blocks, residual scaling 0.1; 43.09 M parameters at x4."""
    return EDSR(scale=scale, **{"num_feat": 256, "num_block": 32, "res_scale": 0.1, **kwargs})


def edsr_student(scale: int = 4, **kwargs) -> EDSR:
    """MCAD-KD's EDSR student: 64 channels, 32 blocks; 2.70 M parameters at x4."""
    return EDSR(scale=scale, **{"num_feat": 64, "num_block": 32, "res_scale": 1.0, **kwargs})


def edsr_baseline(scale: int = 4, **kwargs) -> EDSR:
    """EDSR-baseline: 64 channels, 16 blocks; 1.52 M parameters at x4."""
    return EDSR(scale=scale, **{"num_feat": 64, "num_block": 16, "res_scale": 1.0, **kwargs})


def read_shapes(state: Mapping[str, torch.Tensor]) -> dict | None:
    """EDSR's sizes from BasicSR-layout weights; None for another network."""
    if "body.0.conv1.weight" not in state:
        return None
    num_feat, in_chans = state["conv_first.weight"].shape[:2]
    return {
        "scale": pixel_shuffle_scale(state, "upsample", num_feat),
        "num_feat": num_feat,
        "num_block": count_keys(state, r"body\.\d+\.conv1\.weight"),
        "in_chans": in_chans,
    }


ARGUMENTS = {**CNN_ARGS, "bicubic_skip": flag}
# the first variant takes any size (its factory has the plain defaults)
FAMILY = Family(
    name="edsr",
    read_shapes=read_shapes,
    variants=(
        Variant("edsr_baseline", edsr_baseline, ARGUMENTS),
        Variant("edsr_student", edsr_student, ARGUMENTS),
        Variant("edsr_teacher", edsr_teacher, ARGUMENTS),
        Variant("edsr_sample", EDSR, ARGUMENTS, {"num_feat": 48, "num_block": 8}),
        Variant(
            "edsr_sample_student",
            EDSR,
            ARGUMENTS,
            {"num_feat": 24, "num_block": 4, "bicubic_skip": True},
        ),
        Variant("edsr_tiny_student", EDSR, ARGUMENTS, {"num_feat": 16, "num_block": 2}),
        Variant("edsr_tiny_teacher", EDSR, ARGUMENTS, {"num_feat": 32, "num_block": 4}),
    ),
)
