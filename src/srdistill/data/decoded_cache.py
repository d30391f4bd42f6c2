"""Decoded training images on disk as raw uint8 ``.npy`` files, read memory-mapped.

Decoding a 2K PNG costs tens of milliseconds, far more than cutting a 48 x 48 patch from it; a
memory-mapped ``.npy`` touches only the rows the crop needs. A cache file is only ever data: it
is read with ``allow_pickle=False`` and served only when it holds a uint8 (H, W, 3) array of the
size the source image says it has; anything else (a half-written, truncated, crafted or stale
file) is treated as absent and rewritten. Files are written to a temporary name and renamed, so
a reader never sees a partial file from a concurrent writer.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
from PIL import Image


def image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from the image header alone, or None where it cannot be read."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, ValueError):
        return None
    return height, width


def read_decoded(path: Path, shape: tuple[int, int, int]) -> np.ndarray | None:
    """The cached uint8 image of exactly ``shape``, memory-mapped read-only; None otherwise."""
    if not path.is_file():
        return None
    try:
        image = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != shape:
        return None
    return image


def write_decoded(path: Path, image: np.ndarray) -> None:
    """Store ``image`` (uint8 H x W x 3) atomically: a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(image, dtype=np.uint8), allow_pickle=False)
    tmp.replace(path)
