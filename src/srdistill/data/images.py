"""Reading images into the one layout the pipeline uses: uint8 RGB (H, W, 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def read_rgb(path: str | Path) -> tuple[np.ndarray, bool]:
    """Load an image as uint8 RGB (H, W, 3); also say whether it was stored single-channel.

    Single-channel images (mode L, as Set14's ``bridge``) are replicated to three channels, the
    convention of modern toolboxes; the flag lets a metric treat them the classic way.
    """
    try:
        with Image.open(path) as img:
            gray = img.mode in ("L", "LA", "I", "I;16", "1")
            if img.mode in ("I", "I;16"):  # 16-bit: scale to 8 bits as MATLAB's im2uint8 does
                plane = np.round(np.asarray(img, dtype=np.float64) / 257).clip(0, 255)
                rgb = np.repeat(plane.astype(np.uint8)[..., None], 3, axis=2)
            else:
                rgb = np.asarray(img.convert("RGB"))
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
    return rgb, gray


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    """Drop bottom/right rows and columns so both sides are multiples of ``scale``."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) on [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


def to_uint8_image(tensor: torch.Tensor) -> np.ndarray:
    """float (3, H, W) on [0, 1] -> uint8 (H, W, 3), rounded as a saved PNG would be."""
    array = tensor.detach().float().clamp(0, 1).mul(255).round().byte().cpu().numpy()
    return array.transpose(1, 2, 0)


def list_images(root: str | Path) -> list[Path]:
    """All images below ``root`` (recursive), sorted for reproducibility."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist; set the data root option")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no PNG/JPEG/BMP images found below {root}")
    return files
