"""SwinIR: image restoration using the Swin Transformer (Liang et al., 2021).

Paper: https://arxiv.org/abs/2108.10257. A shallow 3x3 convolution lifts the image to
``embed_dim`` channels; a stack of residual Swin Transformer blocks (RSTBs), each a group of
(shifted-)window self-attention blocks closed by a convolution and a residual connection,
extracts deep features; a long skip adds the shallow features back, and a pixel-shuffle tail
upsamples. Module and parameter names mirror the official release, so its checkpoints load with
``strict=True`` (the ``attn_mask`` buffers depend on ``img_size``, which must therefore equal the
training patch size the checkpoint was saved with, e.g. 48 for the ``s48w8`` files).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, to_2tuple, trunc_normal_
from torch import nn

from srdistill.models.argument_checks import (
    IMG_RANGE,
    IN_CHANS,
    SCALE,
    flag,
    integer,
    integers,
    number,
    one_of,
)
from srdistill.models.heads.upsample import DIV2K_RGB_MEAN, SUPPORTED_SCALES, PixelShuffleUpsample
from srdistill.models.shapes import count_keys, pixel_shuffle_scale
from srdistill.models.taps import Recorder, TappableBackbone
from srdistill.models.variants import Family, Variant

__all__ = [
    "SwinIR",
    "SwinTransformerBlock",
    "WindowAttention",
    "shifted_window_mask",
    "swinir_light",
    "swinir_student",
    "swinir_teacher",
]

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect")
RESI_CONNECTIONS = ("1conv", "3conv")
CLASSICAL_SCALES = SUPPORTED_SCALES
MASK_VALUE = -100.0  # official value; large enough to vanish under softmax, safe in fp16

LayerFactory = Callable[..., nn.Module]


# ---------------------------------------------------------------------------------------------
# Window helpers
# ---------------------------------------------------------------------------------------------
def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, window_size**2, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, c)


def window_reverse(windows: torch.Tensor, window_size: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, window_size**2, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window_size, w // window_size, window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(window_size: int) -> torch.Tensor:
    """(w^2, w^2) index into the ((2w-1)^2, heads) bias table for every query/key pair."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
    ).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + (window_size - 1)  # shift offsets from [-(w-1), w-1] to [0, 2w-2]
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


def _region_ids(n: int, window_size: int, shift: int, device: torch.device | None) -> torch.Tensor:
    # After the cyclic shift the last window along an axis mixes the image's far edge with
    # wrapped-around pixels from the near edge; these three bands label where a pixel came from.
    idx = torch.arange(n, device=device)
    return (idx >= n - window_size).long() + (idx >= n - shift).long()


def shifted_window_mask(
    h: int,
    w: int,
    window_size: int,
    shift: int,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Additive attention mask (nW, w^2, w^2): 0 within a region, ``MASK_VALUE`` across regions.

    Tokens that only became neighbours through the cyclic roll must not attend to each other.
    """
    ids = _region_ids(h, window_size, shift, device)[:, None] * 3
    ids = ids + _region_ids(w, window_size, shift, device)[None, :]
    ids = window_partition(ids[None, :, :, None], window_size).squeeze(-1)
    different = ids[:, None, :] != ids[:, :, None]
    mask = torch.zeros(different.shape, device=device, dtype=dtype)
    return mask.masked_fill(different, MASK_VALUE)


def tokens_to_image(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    return x.transpose(1, 2).view(x.shape[0], x.shape[2], size[0], size[1])


def image_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# Transformer blocks
# ---------------------------------------------------------------------------------------------
class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative-position bias."""

    relative_position_index: torch.Tensor

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        # Persistent because the official checkpoints contain it.
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _bias(self) -> torch.Tensor:
        n = self.window_size**2
        idx = self.relative_position_index.view(-1)
        return self.relative_position_bias_table[idx].view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B * nW, N, C); mask: (nW, N, N) additive, or None."""
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        bias = self._bias().unsqueeze(0)  # (1, heads, N, N)
        if mask is not None:
            nw = mask.shape[0]
            bias = (bias + mask.unsqueeze(1)).unsqueeze(0).expand(bw // nw, -1, -1, -1, -1)
            bias = bias.reshape(bw, self.num_heads, n, n)
        # SDPA's default scale is head_dim ** -0.5, the same as the official qk scale.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinTransformerBlock(nn.Module):
    """(Shifted-)window attention + MLP, both pre-norm with residuals, on (B, H*W, C) tokens."""

    attn_mask: torch.Tensor | None

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        window_size: int = 8,
        shift_size: int = 0,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_layer: LayerFactory = nn.LayerNorm,
        act_layer: LayerFactory = nn.GELU,
    ):
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        if min(self.input_resolution) <= window_size:
            # Official rule: a window that covers the whole image needs no shift.
            shift_size, window_size = 0, min(self.input_resolution)
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size must be in [0, window_size), got {shift_size}")
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer)
        mask = None
        if shift_size > 0:
            mask = shifted_window_mask(*self.input_resolution, window_size, shift_size)
        # Registering None keeps unshifted blocks free of an ``attn_mask`` key, as officially.
        self.register_buffer("attn_mask", mask)

    def _mask(self, size: tuple[int, int], ref: torch.Tensor) -> torch.Tensor | None:
        if self.shift_size == 0:
            return None
        if size == self.input_resolution and self.attn_mask is not None:
            return self.attn_mask
        return shifted_window_mask(
            *size, self.window_size, self.shift_size, device=ref.device, dtype=ref.dtype
        )

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        b, _, c = x.shape
        s = self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        y = self.attn(window_partition(y, self.window_size), mask=self._mask(size, x))
        y = window_reverse(y, self.window_size, h, w)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    """A sequence of blocks alternating regular and shifted windows."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window_size: int,
        drop_path: Sequence[float],
        **block_kwargs,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                dim,
                input_resolution,
                num_heads,
                window_size=window_size,
                shift_size=0 if j % 2 == 0 else window_size // 2,
                drop_path=drop_path[j],
                **block_kwargs,
            )
            for j in range(depth)
        )

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, size)
        return x


def _resi_conv(dim: int, kind: str) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    # '3conv' trades a dense 3x3 for a bottleneck to save parameters (official variant).
    return nn.Sequential(
        nn.Conv2d(dim, dim // 4, 3, 1, 1),
        nn.LeakyReLU(negative_slope=0.2, inplace=True),
        nn.Conv2d(dim // 4, dim // 4, 1, 1, 0),
        nn.LeakyReLU(negative_slope=0.2, inplace=True),
        nn.Conv2d(dim // 4, dim, 3, 1, 1),
    )


class RSTB(nn.Module):
    """Residual Swin Transformer Block: a BasicLayer, a conv, and a residual around both."""

    def __init__(self, dim: int, resi_connection: str = "1conv", **layer_kwargs):
        super().__init__()
        self.residual_group = BasicLayer(dim, **layer_kwargs)
        # The conv restores translation equivariance the windowed attention lacks.
        self.conv = _resi_conv(dim, resi_connection)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y = tokens_to_image(self.residual_group(x, size), size)
        return image_to_tokens(self.conv(y)) + x


class PatchEmbed(nn.Module):
    """Patch size 1: image -> tokens plus an optional norm (kept for the ``patch_embed`` keys)."""

    def __init__(self, dim: int, norm_layer: LayerFactory | None = None):
        super().__init__()
        self.norm = norm_layer(dim) if norm_layer is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = image_to_tokens(x)
        return self.norm(x) if self.norm is not None else x


# ---------------------------------------------------------------------------------------------
# Upsampling tails
# ---------------------------------------------------------------------------------------------
class UpsampleOneStep(nn.Sequential):
    """Lightweight tail: a single conv straight to out_ch * scale^2 channels + PixelShuffle."""

    def __init__(self, scale: int, num_feat: int, out_ch: int):
        super().__init__(nn.Conv2d(num_feat, scale**2 * out_ch, 3, 1, 1), nn.PixelShuffle(scale))


# ---------------------------------------------------------------------------------------------
# SwinIR
# ---------------------------------------------------------------------------------------------
def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


class SwinIR(TappableBackbone):
    """SwinIR for super-resolution (classical or lightweight tail).

    Input is RGB in [0, 1] of any size; the output is ``scale`` times larger, in the same range
    but not clamped. Taps: ``layers.{i}`` (after each RSTB), ``conv_after_body`` (before the long
    skip) and ``body`` (after it), all (B, C, H', W') at the input size padded up to a multiple
    of ``window_size``.
    """

    mean: torch.Tensor

    def __init__(
        self,
        scale: int = 4,
        in_chans: int = 3,
        embed_dim: int = 180,
        depths: Sequence[int] = (6,) * 6,
        num_heads: Sequence[int] = (6,) * 6,
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        img_size: int | tuple[int, int] = 64,
        img_range: float = 1.0,
        upsampler: str = "pixelshuffle",
        resi_connection: str = "1conv",
        qkv_bias: bool = True,
        drop_path_rate: float = 0.1,
        norm_layer: LayerFactory = nn.LayerNorm,
        act_layer: LayerFactory = nn.GELU,
    ):
        super().__init__()
        self._validate(scale, upsampler, resi_connection, embed_dim, depths, num_heads)
        self.scale = scale
        self.window_size = window_size
        self.img_range = img_range
        self.upsampler = upsampler
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        # Non-persistent: a constant, and official checkpoints have no such key.
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm_layer)
        self.layers = self._build_body(
            embed_dim,
            depths,
            num_heads,
            resi_connection,
            drop_path_rate,
            input_resolution=to_2tuple(img_size),
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            norm_layer=norm_layer,
            act_layer=act_layer,
        )
        self.norm = norm_layer(embed_dim)
        self.conv_after_body = _resi_conv(embed_dim, resi_connection)
        self._build_tail(upsampler, scale, embed_dim, in_chans)
        self.tap_names = tuple(f"layers.{i}" for i in range(len(depths))) + (
            "conv_after_body",
            "body",
        )
        self.apply(self._init_weights)

    @staticmethod
    def _validate(scale, upsampler, resi_connection, embed_dim, depths, num_heads) -> None:
        _check_choice("upsampler", upsampler, UPSAMPLERS)
        _check_choice("resi_connection", resi_connection, RESI_CONNECTIONS)
        if upsampler == "pixelshuffle" and scale not in CLASSICAL_SCALES:
            raise ValueError(f"scale must be one of {list(CLASSICAL_SCALES)}, got {scale}")
        if scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale}")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} differ")
        if any(embed_dim % h for h in num_heads):
            raise ValueError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")

    @staticmethod
    def _build_body(
        dim: int,
        depths: Sequence[int],
        num_heads: Sequence[int],
        resi_connection: str,
        drop_path_rate: float,
        **layer_kwargs,
    ) -> nn.ModuleList:
        # Stochastic depth grows linearly over all blocks of all RSTBs, as in Swin.
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths))]
        return nn.ModuleList(
            RSTB(
                dim,
                resi_connection,
                depth=depth,
                num_heads=heads,
                drop_path=dpr[start : start + depth],
                **layer_kwargs,
            )
            for depth, heads, start in zip(depths, num_heads, starts, strict=True)
        )

    def _build_tail(self, upsampler: str, scale: int, embed_dim: int, out_ch: int) -> None:
        if upsampler == "pixelshuffle":
            num_feat = 64
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True)
            )
            self.upsample: nn.Module = PixelShuffleUpsample(scale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, out_ch, 3, 1, 1)
        else:
            self.upsample = UpsampleOneStep(scale, embed_dim, out_ch)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h = (self.window_size - h % self.window_size) % self.window_size
        pad_w = (self.window_size - w % self.window_size) % self.window_size
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return x

    def _deep_features(self, x: torch.Tensor, record: Recorder) -> torch.Tensor:
        size = (x.shape[-2], x.shape[-1])
        t = self.patch_embed(x)
        for i, layer in enumerate(self.layers):
            t = layer(t, size)
            image = tokens_to_image(t, size)
            tapped = record(f"layers.{i}", image)
            if tapped is not image:  # a replacement (forward_replacing): continue from it
                t = image_to_tokens(tapped)
        return tokens_to_image(self.norm(t), size)

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsampler == "pixelshuffle":
            return self.conv_last(self.upsample(self.conv_before_upsample(x)))
        return self.upsample(x)

    def _forward(self, x: torch.Tensor, record: Recorder) -> torch.Tensor:
        h, w = x.shape[-2:]
        mean = self.mean.to(x.dtype)
        x = (self._pad(x) - mean) * self.img_range
        shallow = self.conv_first(x)
        deep = self.conv_after_body(self._deep_features(shallow, record))
        body = record("body", record("conv_after_body", deep) + shallow)
        out = self._reconstruct(body) / self.img_range + mean
        return out[..., : h * self.scale, : w * self.scale]


# ---------------------------------------------------------------------------------------------
# Factories (names referenced by config files)
# ---------------------------------------------------------------------------------------------
_COMMON = dict(window_size=8, mlp_ratio=2.0, img_size=64, resi_connection="1conv")
_SMALL_BODY = dict(embed_dim=60, depths=(6,) * 4, num_heads=(6,) * 4)


def swinir_teacher(scale: int = 4, **kwargs) -> SwinIR:
    """Classical SwinIR-M (~11.9 M params): the usual distillation teacher."""
    cfg = dict(
        _COMMON, embed_dim=180, depths=(6,) * 6, num_heads=(6,) * 6, upsampler="pixelshuffle"
    )
    return SwinIR(scale=scale, **{**cfg, **kwargs})


def swinir_student(scale: int = 4, **kwargs) -> SwinIR:
    """MCAD-KD student (~1.24 M params): SwinIR-S body with the classical (64-channel) tail."""
    cfg = dict(_COMMON, **_SMALL_BODY, upsampler="pixelshuffle")
    return SwinIR(scale=scale, **{**cfg, **kwargs})


def swinir_light(scale: int = 4, **kwargs) -> SwinIR:
    """Lightweight SwinIR-S (~0.9 M params) with the one-step pixel-shuffle tail."""
    cfg = dict(_COMMON, **_SMALL_BODY, upsampler="pixelshuffledirect")
    return SwinIR(scale=scale, **{**cfg, **kwargs})


def read_shapes(state: Mapping[str, torch.Tensor]) -> dict | None:
    """SwinIR's sizes from official-layout weights; None for another network."""
    if "patch_embed.norm.weight" not in state and "layers.0.conv.weight" not in state:
        return None
    embed_dim, in_chans = state["conv_first.weight"].shape[:2]
    layers = count_keys(state, r"layers\.\d+\.residual_group\.blocks\.0\.norm1\.weight")
    block = "layers.{}.residual_group.blocks.0.attn.relative_position_bias_table"
    depths = [
        count_keys(state, rf"layers\.{i}\.residual_group\.blocks\.\d+\.norm1\.weight")
        for i in range(layers)
    ]
    window = (math.isqrt(state[block.format(0)].shape[0]) + 1) // 2
    direct = "conv_before_upsample.0.weight" not in state
    if direct:
        scale = math.isqrt(state["upsample.0.weight"].shape[0] // in_chans)
    else:
        num_feat = state["conv_before_upsample.0.weight"].shape[0]
        scale = pixel_shuffle_scale(state, "upsample", num_feat)
    hidden = state["layers.0.residual_group.blocks.0.mlp.fc1.weight"].shape[0]
    return {
        "scale": scale,
        "in_chans": in_chans,
        "embed_dim": embed_dim,
        "depths": depths,
        # the bias table holds one column per head: the only place the head count shows
        "num_heads": [state[block.format(i)].shape[1] for i in range(layers)],
        "window_size": window,
        "mlp_ratio": hidden / embed_dim,
        "upsampler": "pixelshuffledirect" if direct else "pixelshuffle",
        "resi_connection": "1conv" if "conv_after_body.weight" in state else "3conv",
        "qkv_bias": "layers.0.residual_group.blocks.0.attn.qkv.bias" in state,
    }


ARGUMENTS = {
    "scale": SCALE,
    "in_chans": IN_CHANS,
    # tighter than other sizes: SwinIR cannot be sized up on the meta device first (see export)
    "embed_dim": integer(1, 1024),
    "depths": integers(1, 32, 12),
    "num_heads": integers(1, 32, 12),
    "window_size": integer(1, 32),
    "mlp_ratio": number(0.0, 8.0, low_open=True),
    "img_size": integer(1, 512),
    "img_range": IMG_RANGE,
    "upsampler": one_of(*UPSAMPLERS),
    "resi_connection": one_of(*RESI_CONNECTIONS),
    "qkv_bias": flag,
    "drop_path_rate": number(0.0, 1.0),
}
# (embed_dim, upsampler) of each variant: SwinIR builds for real (not on the meta device), so
# detection tries only the variants of the size the weights show
VARIANT_SIZES = {
    "swinir_student": (60, "pixelshuffle"),
    "swinir_teacher": (180, "pixelshuffle"),
    "swinir_light": (60, "pixelshuffledirect"),
}


def _variants_of_size(sizes: dict) -> tuple[str, ...]:
    shown = (sizes["embed_dim"], sizes["upsampler"])
    return tuple(name for name, size in VARIANT_SIZES.items() if size == shown)


def _generic_variant(sizes: dict) -> str:
    return "swinir_light" if sizes["upsampler"] == "pixelshuffledirect" else "swinir_student"


FAMILY = Family(
    name="swinir",
    read_shapes=read_shapes,
    variants=(
        Variant("swinir_student", swinir_student, ARGUMENTS),
        Variant("swinir_teacher", swinir_teacher, ARGUMENTS),
        Variant("swinir_light", swinir_light, ARGUMENTS),
    ),
    candidates=_variants_of_size,
    generic=_generic_variant,
)
