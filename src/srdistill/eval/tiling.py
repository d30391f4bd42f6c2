"""Tiled inference: super-resolve an image piece by piece when it does not fit in memory.

Each output tile comes from an input tile grown by ``overlap`` LR pixels on every side (clipped at
the image border) and only its core is kept. When the overlap covers the network's receptive field
the result equals whole-image inference for convolutional networks (edges of the image see the same
zero padding either way). Networks with window padding (SwinIR) pad each tile themselves.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from srdistill.metrics.sr import quantize_to_uint8_range

log = logging.getLogger(__name__)

# SPAN's receptive-field radius in LR pixels (conv_1 + 6 blocks x 3 convs + conv_2 + upsampler),
# the deepest of the small students; deep teachers (RCAN, EDSR) need more.
RECOMMENDED_OVERLAP = 21


def check_tiling(tile: int | None, overlap: int) -> None:
    """Refuse impossible settings and warn once when tiles will not match whole-image inference."""
    if overlap < 0:
        raise ValueError(f"tile_overlap must be 0 or more LR pixels, got {overlap}")
    if tile is None:
        return
    if tile < 1:
        raise ValueError(f"tile must be a positive number of LR pixels (or null), got {tile}")
    if overlap < RECOMMENDED_OVERLAP:
        log.warning(
            "tile_overlap=%d is below the network's receptive-field radius, so tiled results "
            "will differ from whole-image inference; use at least that radius (%d LR pixels for "
            "SPAN, more for deep networks such as RCAN)",
            overlap,
            RECOMMENDED_OVERLAP,
        )


def _starts(length: int, tile: int) -> range:
    return range(0, length, tile)


def _as_output(image: torch.Tensor, to_uint8: bool) -> torch.Tensor:
    # on the CPU: float64 (exact quantisation) is not available on every accelerator
    return quantize_to_uint8_range(image.cpu()).to(torch.uint8) if to_uint8 else image


@torch.no_grad()
def tiled_forward(
    model: nn.Module,
    lq: torch.Tensor,
    scale: int,
    tile: int | None,
    overlap: int = 32,
    to_uint8: bool = False,
) -> torch.Tensor:
    """``model(lq)`` computed on tiles of ``tile`` x ``tile`` LR pixels (None: whole image).

    The assembled output stays on the input's device; each tile is run on the same device.
    ``to_uint8``: each tile is clamped, rounded to 8 bits (as a saved PNG, exactly as the metrics
    quantise) and stored as uint8 on the CPU, a quarter of the float memory.
    """
    if tile is not None and (tile < 1 or overlap < 0):
        raise ValueError(f"tile must be positive and overlap non-negative, got {tile}, {overlap}")
    if tile is None or (lq.shape[-2] <= tile and lq.shape[-1] <= tile):
        return _as_output(model(lq), to_uint8)
    batch, _, height, width = lq.shape
    out = torch.zeros(
        batch,
        3,
        height * scale,
        width * scale,
        dtype=torch.uint8 if to_uint8 else lq.dtype,
        device="cpu" if to_uint8 else lq.device,
    )
    for top in _starts(height, tile):
        for left in _starts(width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            y0, x0 = max(top - overlap, 0), max(left - overlap, 0)
            y1, x1 = min(bottom + overlap, height), min(right + overlap, width)
            piece = model(lq[..., y0:y1, x0:x1])
            core = piece[
                ...,
                (top - y0) * scale : (bottom - y0) * scale,
                (left - x0) * scale : (right - x0) * scale,
            ]
            out[..., top * scale : bottom * scale, left * scale : right * scale] = _as_output(
                core, to_uint8
            )
    return out
