"""DUKD's data upcycling: inputs for the teacher that have no ground truth, made from a batch.

- zoom-in: the HR patch cut into an s x s grid of LR-sized tiles (clean HR crops, not degraded:
  outside the teacher's training distribution by design);
- zoom-out: the LR patch downscaled by 1/s with the project's MATLAB-compatible bicubic;
- label-consistency augmentations: colour inversion, row flip, column flip and transpose, each
  applied per sample, and their inverse applied to the network's output.

Pure tensor functions; randomness comes from ``generator`` (a CPU ``torch.Generator``) or, when
it is None, from torch's global RNG, which training seeds.
"""

from __future__ import annotations

import torch

from srdistill.data.matlab_bicubic import imresize

# order in which ``augment`` applies the ops; ``invert_augment`` undoes them in reverse
AUGMENT_OPS = ("invert", "flip_rows", "flip_cols", "transpose")


def hr_tiles(gt: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, C, sH, sW) -> (s*s, B, C, H, W): the s x s grid of tiles, row-major."""
    b, c, hh, ww = gt.shape
    if hh % scale or ww % scale:
        raise ValueError(f"hr_tiles: HR size {hh}x{ww} is not divisible by scale {scale}")
    h, w = hh // scale, ww // scale
    grid = gt.reshape(b, c, scale, h, scale, w).permute(2, 4, 0, 1, 3, 5)
    return grid.reshape(scale * scale, b, c, h, w)


def assemble_tiles(tiles: torch.Tensor, scale: int) -> torch.Tensor:
    """Inverse of :func:`hr_tiles`: (s*s, B, C, H, W) -> (B, C, sH, sW)."""
    _, b, c, h, w = tiles.shape
    grid = tiles.reshape(scale, scale, b, c, h, w).permute(2, 3, 0, 4, 1, 5)
    return grid.reshape(b, c, scale * h, scale * w)


def zoom_in(
    gt: torch.Tensor, scale: int, n_sub: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n_sub`` tiles of the HR batch chosen without replacement (the same tiles for every
    image), concatenated tile after tile: (n_sub*B, C, H, W) with H x W the LR size."""
    if not 1 <= n_sub <= scale * scale:
        raise ValueError(f"zoom_in: n_sub must be in [1, {scale * scale}], got {n_sub}")
    chosen = torch.randperm(scale * scale, generator=generator)[:n_sub]
    tiles = hr_tiles(gt, scale)[chosen.to(gt.device)]
    return tiles.reshape(-1, *tiles.shape[2:])


def zoom_out_target(lq: torch.Tensor, scale: int) -> torch.Tensor:
    """``lq`` cropped (bottom/right) to a multiple of ``scale``: what :func:`zoom_out` shrinks,
    hence the ground truth of the student's upscaling of it."""
    h, w = lq.shape[-2] - lq.shape[-2] % scale, lq.shape[-1] - lq.shape[-1] % scale
    if h == 0 or w == 0:
        raise ValueError(f"zoom_out: LR size {tuple(lq.shape[-2:])} is smaller than scale {scale}")
    return lq[..., :h, :w]


def zoom_out(lq: torch.Tensor, scale: int) -> torch.Tensor:
    """The LR batch shrunk by 1/s (MATLAB bicubic with antialiasing, float, no rounding), after
    cropping to a multiple of ``scale`` (:func:`zoom_out_target`)."""
    target = zoom_out_target(lq, scale)
    return imresize(target, out_hw=(target.shape[-2] // scale, target.shape[-1] // scale))


def sample_augment_ops(n: int, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 4) bool: for each sample, whether each op of ``AUGMENT_OPS`` applies (prob. ``p``)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"augmentation probability must be in [0, 1], got {p}")
    return torch.rand(n, len(AUGMENT_OPS), generator=generator) < p


def _apply_op(x: torch.Tensor, op: str, mask: torch.Tensor) -> torch.Tensor:
    if not mask.any():
        return x
    if op == "invert":
        changed = 1.0 - x  # images in [0, 1]
    elif op == "flip_rows":
        changed = x.flip(-2)
    elif op == "flip_cols":
        changed = x.flip(-1)
    else:
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"transpose needs square images, got {tuple(x.shape[-2:])}")
        changed = x.transpose(-2, -1)
    return torch.where(mask.to(x.device).view(-1, *([1] * (x.ndim - 1))), changed, x)


def augment(x: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """``a(x)``: each sample's ops from ``ops`` (n, 4), applied in ``AUGMENT_OPS`` order."""
    for i, op in enumerate(AUGMENT_OPS):
        x = _apply_op(x, op, ops[:, i])
    return x


def invert_augment(y: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """``a^{-1}(y)``: every op is its own inverse, so undo them in *reverse* order.

    The released DUKD code re-applies them in the same order, which returns a 180-degree rotation
    instead of the original whenever transpose comes with exactly one flip.
    """
    for i, op in reversed(list(enumerate(AUGMENT_OPS))):
        y = _apply_op(y, op, ops[:, i])
    return y
