"""MATLAB-compatible bicubic resize, the operator every SR benchmark's LR images come from.

Follows MATLAB ``imresize(I, scale, 'bicubic')``: Keys' cubic kernel (a = -0.5), a kernel
stretched by 1/scale when shrinking (antialiasing), MATLAB's 1-based index mapping, symmetric
padding with edge repetition, and one 1-D pass per dimension (height first when both scales are
equal). For uint8 input the result of each pass is clipped and rounded back to uint8, as MATLAB
does; that intermediate rounding is what makes our LR images equal the published ones.

Each pass is a dense (out x in) matrix product: the matrices are small (a few MB for a 2K image),
cached, and run on whatever device the tensor lives on.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


def cubic(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    a = np.abs(t)
    a2, a3 = a * a, a * a * a
    near = (1.5 * a3 - 2.5 * a2 + 1.0) * (a <= 1)
    far = (-0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0) * ((a > 1) & (a <= 2))
    return near + far


def output_length(in_length: int, scale: float) -> int:
    """MATLAB's output size: ``ceil(scale * in)`` (OpenCV rounds instead)."""
    return int(math.ceil(in_length * scale - 1e-9))


@lru_cache(maxsize=64)
def resize_matrix(
    in_length: int, out_length: int, scale: float, antialias: bool = True
) -> np.ndarray:
    """The (out_length, in_length) float64 matrix of one 1-D MATLAB bicubic pass.

    Rows sum to one; reflected taps are folded back onto their source pixels.
    """
    shrink = antialias and scale < 1
    width = 4.0 / scale if shrink else 4.0
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    index = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    dist = u[:, None] - index
    weights = scale * cubic(scale * dist) if shrink else cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    source = mirror[np.mod(index.astype(np.int64) - 1, 2 * in_length)]
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps), source.ravel()), weights.ravel())
    return matrix


def _round_uint8(values):
    """Clip to [0, 255] and round half away from zero, as MATLAB's uint8 conversion does."""
    if isinstance(values, torch.Tensor):
        return torch.floor(values.clamp(0, 255) + 0.5)
    return np.floor(np.clip(values, 0, 255) + 0.5)


def _pass_order(scale_h: float, scale_w: float) -> tuple[int, int]:
    """MATLAB resizes the dimension with the smaller scale first; height first on ties."""
    return (0, 1) if scale_h <= scale_w else (1, 0)


def _resolve_sizes(
    in_hw: tuple[int, int], scale: float | None, out_hw: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[float, float]]:
    if (scale is None) == (out_hw is None):
        raise ValueError("imresize: give exactly one of `scale` or `out_hw`")
    if scale is not None:
        if scale <= 0:
            raise ValueError(f"imresize: scale must be positive, got {scale}")
        return (output_length(in_hw[0], scale), output_length(in_hw[1], scale)), (scale, scale)
    assert out_hw is not None
    return tuple(out_hw), (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1])


def imresize(
    image,
    scale: float | None = None,
    out_hw: tuple[int, int] | None = None,
    antialias: bool = True,
    emulate_uint8: bool = False,
):
    """Resize like MATLAB ``imresize(image, scale, 'bicubic')``.

    Args:
        image: numpy array (H, W) or (H, W, C), or torch tensor (..., H, W) (batched, any device).
            uint8 input is processed as MATLAB does (rounded after each pass, uint8 out); float
            input is resized without rounding.
        scale: factor (0.25 shrinks by 4, 2 enlarges by 2); output size is ``ceil(scale * size)``.
        out_hw: explicit output (height, width) instead of ``scale``.
        antialias: widen the kernel when shrinking (MATLAB default).
        emulate_uint8: for float input in [0, 1] holding 8-bit values, quantise to 1/255 after
            each pass exactly as uint8 input would be (used for the classic bicubic baseline).

    >>> imresize(np.full((8, 8), 7, np.uint8), scale=0.5).shape
    (4, 4)
    """
    if isinstance(image, torch.Tensor):
        return _imresize_torch(image, scale, out_hw, antialias, emulate_uint8)
    return _imresize_numpy(np.asarray(image), scale, out_hw, antialias)


def _imresize_numpy(image: np.ndarray, scale, out_hw, antialias) -> np.ndarray:
    if image.ndim not in (2, 3):
        raise ValueError(f"imresize: numpy input must be (H, W) or (H, W, C), got {image.shape}")
    is_uint8 = image.dtype == np.uint8
    sizes, scales = _resolve_sizes(image.shape[:2], scale, out_hw)
    out = image.astype(np.float64)
    for dim in _pass_order(*scales):
        matrix = resize_matrix(image.shape[dim], sizes[dim], scales[dim], antialias)
        out = np.moveaxis(np.tensordot(matrix, np.moveaxis(out, dim, 0), axes=1), 0, dim)
        if is_uint8:
            out = _round_uint8(out)
    if is_uint8:
        return out.astype(np.uint8)
    return out.astype(image.dtype) if image.dtype in (np.float32, np.float16) else out


def _imresize_torch(image: torch.Tensor, scale, out_hw, antialias, emulate_uint8) -> torch.Tensor:
    if image.ndim < 2:
        raise ValueError(f"imresize: tensor input must be (..., H, W), got {tuple(image.shape)}")
    is_uint8 = image.dtype == torch.uint8
    # 8-bit work happens on integer values in float64, so ties round exactly as MATLAB's do
    integer_domain = is_uint8 or emulate_uint8
    work_dtype = torch.float64 if integer_domain or image.dtype == torch.float64 else torch.float32
    sizes, scales = _resolve_sizes(tuple(image.shape[-2:]), scale, out_hw)
    out = image.to(work_dtype)
    if emulate_uint8 and not is_uint8:
        out = _round_uint8(out * 255)
    for dim in _pass_order(*scales):
        matrix = resize_matrix(image.shape[-2 + dim], sizes[dim], scales[dim], antialias)
        matrix_t = torch.from_numpy(matrix).to(device=image.device, dtype=work_dtype)
        out = matrix_t @ out if dim == 0 else out @ matrix_t.T
        if integer_domain:
            out = _round_uint8(out)
    if is_uint8:
        return out.to(torch.uint8)
    return (out / 255 if emulate_uint8 else out).to(image.dtype)
