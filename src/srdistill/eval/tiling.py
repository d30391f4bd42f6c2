"""Tiled inference: super-resolve an image piece by piece when it does not fit in memory.

Each output tile comes from an input tile grown by ``overlap`` LR pixels on every side (clipped at
the image border) and only its core is kept. When the overlap covers the network's receptive field
the result equals whole-image inference for convolutional networks (edges of the image see the same
zero padding either way). Networks with window padding (SwinIR) pad each tile themselves.
"""

from __future__ import annotations

import torch
from torch import nn


def _starts(length: int, tile: int) -> range:
    return range(0, length, tile)


@torch.no_grad()
def tiled_forward(
    model: nn.Module, lq: torch.Tensor, scale: int, tile: int | None, overlap: int = 32
) -> torch.Tensor:
    """``model(lq)`` computed on tiles of ``tile`` x ``tile`` LR pixels (None: whole image).

    The assembled output stays on the input's device; each tile is run on the same device.
    """
    if tile is None or (lq.shape[-2] <= tile and lq.shape[-1] <= tile):
        return model(lq)
    if tile < 1 or overlap < 0:
        raise ValueError(f"tile must be positive and overlap non-negative, got {tile}, {overlap}")
    batch, _, height, width = lq.shape
    out = lq.new_zeros(batch, 3, height * scale, width * scale)
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
            out[..., top * scale : bottom * scale, left * scale : right * scale] = core
    return out
