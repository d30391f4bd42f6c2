"""The rank of a merged ConvLoRA update, read from a weight change's singular values.

A rank-r adapter on a k x k conv adds ``reshape(B @ A)`` with ``B @ A`` of rank at most r*k in the
ConvLoRA view (C_out*k, C_in/groups*k) of the kernel. Two weight files saved in float32 differ
there by that update plus round-off, so the spectrum of the change drops sharply after r*k
values; the rank is where the drop is the largest ratio, not a count above a fixed tolerance
(the round-off floor depends on the weights' scale).

One ratio is left out for a square view (C_out == C_in/groups): the smallest singular value of a
square matrix's noise part sits at the hard edge of its spectrum, near zero whatever the rank
(random-matrix theory; the released DSCF changes show last ratios of 5 to 140 there), so
``s_{n-1} / s_n`` says nothing about the adapter's rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# singular values below this fraction of the largest are float64 round-off of the SVD itself
NUMERICAL_ZERO = 1e-13


@dataclass(frozen=True)
class SpectralGap:
    rank: int  # the r such that s_r / s_{r+1} is largest
    ratio: float  # s_r / s_{r+1}; inf when every later singular value is numerically zero
    possible: int  # min of the view's two sides: the largest rank there could be


def convlora_view(delta: torch.Tensor) -> torch.Tensor:
    """A (C_out, C_in, k, k) kernel as ConvLoRA's (C_out*k, C_in*k) matrix (same memory order)."""
    if delta.dim() != 4 or delta.shape[-1] != delta.shape[-2]:
        raise ValueError(f"a square conv kernel (C_out, C_in, k, k) is needed, got {delta.shape}")
    c_out, c_in, k, _ = delta.shape
    return delta.reshape(c_out * k, c_in * k)


def largest_gap(singular: torch.Tensor, square: bool = False) -> SpectralGap | None:
    """Where a descending spectrum drops by the largest ratio; None for an all-zero change.

    Only the nonzero values compete; when some are numerically zero the last nonzero one is
    followed by an infinite drop, so a change of exact rank r reports r. ``square``: the
    spectrum is a square matrix's, whose last ratio (the hard edge) does not compete.
    """
    singular = singular.double()
    possible = singular.numel()
    if possible == 0 or singular[0] <= 0:
        return None
    nonzero = singular[singular > NUMERICAL_ZERO * singular[0]]
    if nonzero.numel() < possible:
        return SpectralGap(nonzero.numel(), float("inf"), possible)
    if possible == 1:
        return SpectralGap(1, float("inf"), possible)
    ratios = nonzero[:-1] / nonzero[1:]
    if square and ratios.numel() > 1:
        ratios = ratios[:-1]
    i = int(ratios.argmax())
    return SpectralGap(i + 1, float(ratios[i]), possible)


def update_rank(delta: torch.Tensor) -> SpectralGap | None:
    """The largest-gap rank of a conv kernel change in the ConvLoRA view (float64 SVD)."""
    view = convlora_view(delta.double())
    return largest_gap(torch.linalg.svdvals(view), square=view.shape[0] == view.shape[1])
