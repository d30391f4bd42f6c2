"""SPAN, Swift Parameter-free Attention Network (Wan et al., CVPR-W 2024,
https://arxiv.org/abs/2311.12770), the NTIRE 2024 efficient-SR winner and DSCLoRA's base network.

Six SPAB blocks whose attention has no parameters (``sigmoid(o) - 0.5`` gating ``o + h``), each
conv a re-parameterisable ``Conv3XC``. Two forms share one class:

- inference form (``reparameterized=True``): each Conv3XC is one 3x3 conv named ``eval_conv``; this
  is the "slim" format of the released checkpoints (44 tensors at x4);
- training form: a 1x1 skip in parallel with 1x1 (C -> 2C) -> 3x3 -> 1x1 (-> C). All branches are
  linear, so ``reparameterize()`` folds them exactly into the inference form.

Inputs are RGB on [0, 1], normalised as ``(x - mean) * 255``; like the released model the mean is
not added back at the output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from srdistill.models.argument_checks import IMG_RANGE, IN_CHANS, SCALE, flag
from srdistill.models.heads.upsample import DIV2K_RGB_MEAN
from srdistill.models.taps import Recorder, TappableBackbone
from srdistill.models.variants import Family, Variant


def _kernel(conv: nn.Conv2d) -> torch.Tensor:
    """The kernel a conv applies (an adapted conv, e.g. ConvLoRA, exposes its own)."""
    effective = getattr(conv, "effective_weight", None)
    return effective() if callable(effective) else conv.weight


class Conv3XC(nn.Module):
    """A 3x3 conv that trains as an expanded linear block and deploys as one conv."""

    def __init__(
        self, c_in: int, c_out: int, gain: int = 2, bias: bool = True, reparameterized: bool = True
    ) -> None:
        super().__init__()
        self.c_in, self.c_out, self.gain, self.bias = c_in, c_out, gain, bias
        self.reparameterized = reparameterized
        if reparameterized:
            self.eval_conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)
        else:
            self.sk = nn.Conv2d(c_in, c_out, 1, bias=bias)
            self.conv = nn.Sequential(
                nn.Conv2d(c_in, c_in * gain, 1, bias=bias),
                nn.Conv2d(c_in * gain, c_out * gain, 3, bias=bias),
                nn.Conv2d(c_out * gain, c_out, 1, bias=bias),
            )

    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The (weight, bias) of the single 3x3 conv equal to this block."""
        if self.reparameterized:
            return self.eval_conv.weight, self.eval_conv.bias
        first, middle, last = self.conv
        w1, w2, w3 = _kernel(first)[:, :, 0, 0], _kernel(middle), _kernel(last)[:, :, 0, 0]
        weight = torch.einsum("on,nmuv,mi->oiuv", w3, w2, w1)
        weight = weight + F.pad(_kernel(self.sk), (1, 1, 1, 1))
        if not self.bias:
            return weight, None
        # The input is zero-padded before the first 1x1 conv, so its bias reaches every tap of
        # the 3x3 window, borders included: the fold is exact everywhere.
        inner = w2.sum(dim=(2, 3)) @ first.bias + middle.bias
        return weight, w3 @ inner + last.bias + self.sk.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparameterized:
            return self.eval_conv(x)
        if self.training:
            return self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)
        weight, bias = self.fused_kernel()
        return F.conv2d(x, weight, bias, padding=1)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the training branches into ``eval_conv`` in place."""
        if self.reparameterized:
            return
        weight, bias = self.fused_kernel()
        self.eval_conv = nn.Conv2d(self.c_in, self.c_out, 3, padding=1, bias=self.bias)
        self.eval_conv.to(device=weight.device, dtype=weight.dtype)
        self.eval_conv.weight.copy_(weight)
        if bias is not None:
            self.eval_conv.bias.copy_(bias)
        del self.sk, self.conv
        self.reparameterized = True


class SPAB(nn.Module):
    """Swift parameter-free attention block; returns (output, first activated conv output)."""

    def __init__(
        self,
        channels: int,
        bias: bool = True,
        reparameterized: bool = True,
        act_layer: type[nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        self.c1_r = Conv3XC(channels, channels, 2, bias, reparameterized)
        self.c2_r = Conv3XC(channels, channels, 2, bias, reparameterized)
        self.c3_r = Conv3XC(channels, channels, 2, bias, reparameterized)
        self.act = act_layer()

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The released code applies SiLU in place, so the "first output" it concatenates later is
        # the activated tensor; the checkpoints were trained that way.
        a = self.act(self.c1_r(h))
        o = self.c3_r(self.act(self.c2_r(a)))
        return (o + h) * (torch.sigmoid(o) - 0.5), a


class SPAN(TappableBackbone):
    """SPAN; taps ``conv_1``, ``block_{1..6}`` (block outputs) and ``conv_cat``."""

    num_blocks = 6

    def __init__(
        self,
        scale: int = 4,
        feature_channels: int = 48,
        in_chans: int = 3,
        bias: bool = True,
        img_range: float = 255.0,
        rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN,
        reparameterized: bool = True,
        act_layer: type[nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        c = feature_channels
        self.scale, self.img_range = scale, img_range
        self.register_buffer("mean", torch.tensor(rgb_mean).view(1, 3, 1, 1), persistent=False)
        self.conv_1 = Conv3XC(in_chans, c, 2, bias, reparameterized)
        for i in range(1, self.num_blocks + 1):
            setattr(self, f"block_{i}", SPAB(c, bias, reparameterized, act_layer))
        self.conv_cat = nn.Conv2d(4 * c, c, 1, bias=True)
        self.conv_2 = Conv3XC(c, c, 2, bias, reparameterized)
        self.upsampler = nn.Sequential(
            nn.Conv2d(c, in_chans * scale * scale, 3, padding=1), nn.PixelShuffle(scale)
        )
        blocks = tuple(f"block_{i}" for i in range(1, self.num_blocks + 1))
        self.tap_names = ("conv_1", *blocks, "conv_cat")

    def _forward(self, x: torch.Tensor, record: Recorder) -> torch.Tensor:
        feat = self.conv_1((x - self.mean) * self.img_range)
        feat = record("conv_1", feat)
        h = feat
        for i in range(1, self.num_blocks + 1):
            h, first = getattr(self, f"block_{i}")(h)
            h = record(f"block_{i}", h)
            if i == 1:
                out_b1 = h
        cat = self.conv_cat(torch.cat([feat, self.conv_2(h), out_b1, first], dim=1))
        cat = record("conv_cat", cat)
        return self.upsampler(cat)

    def reparameterize(self) -> SPAN:
        """Fold every Conv3XC into its inference conv, in place; returns self."""
        for module in self.modules():
            if isinstance(module, Conv3XC):
                module.reparameterize()
        return self


def span_ch16(scale: int = 4, **kwargs) -> SPAN:
    """A narrower SPAN, 16 channels (no released weights): the same-family student of
    docs/RESULTS.md's SPAN ch28 -> ch16 table, about a third of ch28's parameters."""
    return SPAN(scale=scale, feature_channels=16, **kwargs)


def span_ch26(scale: int = 4, **kwargs) -> SPAN:
    """SPAN-Tiny (NTIRE 2024 ESR), 26 channels: 130,828 parameters at x4 (inference form)."""
    return SPAN(scale=scale, feature_channels=26, **kwargs)


def span_ch28(scale: int = 4, **kwargs) -> SPAN:
    """SPAN, 28 channels (DSCLoRA's teacher): 150,688 parameters at x4 (inference form)."""
    return SPAN(scale=scale, feature_channels=28, **kwargs)


def span_ch48(scale: int = 4, **kwargs) -> SPAN:
    """SPAN as released, 48 channels: 426,288 parameters at x4 (inference form)."""
    return SPAN(scale=scale, feature_channels=48, **kwargs)


def span_ch52(scale: int = 4, **kwargs) -> SPAN:
    """SPAN as in the paper's parameter counts, 52 channels: 498,208 parameters at x4."""
    return SPAN(scale=scale, feature_channels=52, **kwargs)


def read_shapes(state: Mapping[str, torch.Tensor]) -> dict:
    """SPAN's sizes from either form's weights (``width``: the feature channels)."""
    training_form = "conv_1.sk.weight" in state
    first = state["conv_1.sk.weight" if training_form else "conv_1.eval_conv.weight"]
    width, in_chans = first.shape[:2]
    scale = math.isqrt(state["upsampler.0.weight"].shape[0] // in_chans)
    return {
        "width": width,
        "scale": scale,
        "in_chans": in_chans,
        "bias": ("conv_1.sk.bias" if training_form else "conv_1.eval_conv.bias") in state,
        "reparameterized": not training_form,
    }


ARGUMENTS = {
    "scale": SCALE,
    "in_chans": IN_CHANS,
    "bias": flag,
    "img_range": IMG_RANGE,
    "reparameterized": flag,
}
# the inference form, as the released checkpoints (``false``: the training form)
INFERENCE_FORM = {"reparameterized": True}
VARIANT_BY_WIDTH = {
    16: "span_ch16",
    26: "span_ch26",
    28: "span_ch28",
    48: "span_ch48",
    52: "span_ch52",
}
FAMILY = Family(
    name="span",
    read_shapes=read_shapes,
    variants=(
        Variant("span_ch16", span_ch16, ARGUMENTS, INFERENCE_FORM),
        Variant("span_ch26", span_ch26, ARGUMENTS, INFERENCE_FORM),
        Variant("span_ch28", span_ch28, ARGUMENTS, INFERENCE_FORM),
        Variant("span_ch48", span_ch48, ARGUMENTS, INFERENCE_FORM),
        Variant("span_ch52", span_ch52, ARGUMENTS, INFERENCE_FORM),
    ),
    # the width names the variant, whose numbers all show in the weights: nothing else to try
    candidates=lambda sizes: (),
    generic=lambda sizes: VARIANT_BY_WIDTH.get(sizes["width"]),
)
