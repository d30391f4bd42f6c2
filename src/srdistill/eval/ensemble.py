"""Geometric self-ensemble (x8 test-time augmentation, the "+" of EDSR+, Lim et al. 2017).

The network is run on the eight dihedral transforms of the LR input (identity, horizontal flip
and the 90-degree rotations of both), each output is mapped back by the exact inverse transform
and the eight outputs are averaged. Flips and quarter turns only permute pixels, so every inverse
is exact, and non-square inputs work (a quarter turn swaps height and width on the way in and
back on the way out).
"""

from __future__ import annotations

import torch
from torch import nn

# (horizontal flip first, then this many quarter turns): the eight elements of the dihedral group
TRANSFORMS = tuple((flip, turns) for flip in (False, True) for turns in range(4))
_SPATIAL = (-2, -1)


def dihedral(x: torch.Tensor, flip: bool, turns: int) -> torch.Tensor:
    """``x`` mirrored left-right (when ``flip``) and then turned ``turns`` quarter turns."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, turns, _SPATIAL) if turns else x


def inverse_dihedral(y: torch.Tensor, flip: bool, turns: int) -> torch.Tensor:
    """Undo :func:`dihedral`: turn back first, then mirror."""
    if turns:
        y = torch.rot90(y, -turns, _SPATIAL)
    return y.flip(-1) if flip else y


def self_ensemble(model: nn.Module, lq: torch.Tensor) -> torch.Tensor:
    """Mean over the eight dihedral transforms of ``inverse(model(transform(lq)))``.

    The passes run one after another into one float32 accumulator, so the peak memory is one
    forward pass plus one output, not eight.
    """
    total = None
    for flip, turns in TRANSFORMS:
        out = inverse_dihedral(model(dihedral(lq, flip, turns)), flip, turns)
        if total is None:
            total = out.to(torch.float32, copy=True)  # never add into the network's own output
        else:
            total.add_(out)
    return total / len(TRANSFORMS)


class SelfEnsemble(nn.Module):
    """``model`` behind the x8 self-ensemble: a drop-in network for tiling and the metrics."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def scale(self) -> int:
        return self.model.scale

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        return self_ensemble(self.model, lq)
