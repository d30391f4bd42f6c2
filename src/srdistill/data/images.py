"""Reading images into the one layout the pipeline uses: uint8 RGB (H, W, 3).

Every user or training image goes through ``read_image`` (``read_rgb``), so upscaling, training
and evaluation see the same pixels:

- EXIF orientation is applied: a phone JPEG stored sideways comes out as it is shown.
- Images over ``MAX_PIXELS`` (PIL's default limit) are refused from their header, before any
  decoding: a small file claiming 100000 x 100000 pixels never allocates them.
- Images of several frames (GIF/APNG animations, multi-page TIFFs) are refused; the extra
  frames of a camera's MPO JPEG are previews of the first and are ignored.
- 16-bit single-channel images are scaled to 8 bits (value / 257, rounded, as MATLAB's
  ``im2uint8``); 16-bit colour PNGs reach us as PIL decodes them, its 8-bit high byte (a
  truncation: 65280 reads 255, not 254); float images are read on [0, 1] (value * 255, rounded)
  and refused when their values leave [0, 1].

Each refusal is a ``ValueError`` naming the file and what to do, on one line.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MAX_PIXELS = 178_956_970  # PIL's MAX_IMAGE_PIXELS: 0.5 GiB as 8-bit RGB, a 13000 x 13000 photo
EXIF_ORIENTATION = 0x0112
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
GRAY_MODES = ("1", "L", "LA", "La", "F", *SIXTEEN_BIT_MODES)
READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError)
# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose)
UPRIGHT_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageError(ValueError):
    """An image srdistill refuses; the message names the file and what to do, on one line."""


@dataclass
class DecodedImage:
    """An image as the pipeline uses it: uint8 RGB, whether it was stored single-channel (a
    metric may then treat it the classic way), and its uint8 alpha plane if it has one."""

    rgb: np.ndarray
    gray: bool
    alpha: np.ndarray | None


def read_image(path: str | Path, data: bytes | None = None) -> DecodedImage:
    """``path`` decoded, upright and checked (see the module docstring); given ``data``, the
    file's bytes already read, those are decoded instead of reading the file again."""
    try:
        with open_image(path, data) as img:
            # decided from the header, as upright_size is: an EXIF block that only decoding
            # reaches (a PNG eXIf chunk after the pixels) must not turn the image afterwards
            turn = orientation(img)
            img.load()
            if turn != 1:
                img = img.transpose(UPRIGHT_TRANSPOSE[turn])
            rgb, gray = pixels_to_rgb(img, path)
            return DecodedImage(rgb, gray, _alpha(img))
    except ImageError:
        raise
    except READ_ERRORS as err:
        raise _read_error(path, err) from None


def read_rgb(path: str | Path, data: bytes | None = None) -> tuple[np.ndarray, bool]:
    """Load an image as uint8 RGB (H, W, 3); also say whether it was stored single-channel.

    Single-channel images (mode L, as Set14's ``bridge``) are replicated to three channels, the
    convention of modern toolboxes; the flag lets a metric treat them the classic way. ``data``:
    as for ``read_image``.
    """
    image = read_image(path, data)
    return image.rgb, image.gray


def check_image(path: str | Path, decode: bool = False) -> None:
    """Refuse ``path`` now if ``read_image`` would: header checks and PIL's ``verify``, and a
    decode only for float and 32-bit images, whose values decide whether they can be read.

    ``decode=True`` decodes every image: ``verify`` checks almost nothing in a JPEG (one cut in
    half passes it), so only a full decode proves the pixels readable."""
    try:
        with open_image(path) as img:
            value_checked = img.mode in ("F", "I")
            if not (decode or value_checked):
                img.verify()
                return
            img.load()
            if value_checked:
                pixels_to_rgb(img, path)
    except ImageError:
        raise
    except READ_ERRORS as err:
        raise _read_error(path, err) from None


@contextmanager
def open_image(path: str | Path, data: bytes | None = None) -> Iterator[Image.Image]:
    """``path`` opened (header read, pixels not decoded), refused if too large or animated;
    from ``data`` when given (the file's bytes, read already), errors still naming ``path``."""
    with _open_within_limit(path, data) as img:
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise _too_large(path, f"{width}x{height} ({width * height:,} pixels)")
        if getattr(img, "is_animated", False) and img.format != "MPO":
            raise ImageError(
                f"image {path} holds {img.n_frames} frames (an animation or a multi-page file); "
                "srdistill reads single images: save the frame you want as a PNG"
            )
        yield img


@contextmanager
def _open_within_limit(path: str | Path, data: bytes | None) -> Iterator[Image.Image]:
    try:
        with warnings.catch_warnings():
            # PIL only warns between its limit and twice it; open_image refuses those itself
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path if data is None else io.BytesIO(data))
    except Image.DecompressionBombError as err:
        found = re.search(r"\((\d+) pixels\)", str(err))
        pixels = f"{int(found.group(1)):,} pixels" if found else f"over {2 * MAX_PIXELS:,} pixels"
        raise _too_large(path, pixels) from None
    with img:
        yield img


def _too_large(path, size: str) -> ImageError:
    return ImageError(
        f"image {path} is {size} by its header, above the limit of {MAX_PIXELS:,} pixels "
        "(a decompression bomb, or a photo too large to read whole); shrink or crop it"
    )


def _read_error(path, err: Exception) -> ImageError:
    lines = str(err).strip().splitlines()
    reason = lines[0].replace(f" '{path}'", "") if lines else type(err).__name__
    if isinstance(err, UnidentifiedImageError):  # PIL names what it read: a path or a buffer
        reason = "cannot identify image file"
    return ImageError(f"cannot read image {path}: {reason}")


def orientation(img: Image.Image) -> int:
    """The EXIF orientation (1 = upright) of an opened image, read without decoding it."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1  # PNG keeps EXIF before the pixels (eXIf before IDAT): none there, none at all
    try:
        value = img.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block leaves the pixels as stored
        return 1
    return value if value in range(1, 9) else 1


def upright_size(img: Image.Image) -> tuple[int, int]:
    """(height, width) of an opened image once its EXIF orientation is applied."""
    width, height = img.size
    return (width, height) if orientation(img) in (5, 6, 7, 8) else (height, width)


def pixels_to_rgb(img: Image.Image, path: str | Path) -> tuple[np.ndarray, bool]:
    """A decoded image as uint8 RGB and whether it was single-channel; 16-bit and float
    images scaled by their bit depth (see the module docstring)."""
    gray = img.mode in GRAY_MODES
    if img.mode in SIXTEEN_BIT_MODES:
        plane = _within(np.asarray(img), 0, 65535, path, "a 32-bit integer", "0 to 65535")
        plane = np.round(plane.astype(np.float64) / 257)
    elif img.mode == "F":
        plane = _within(np.asarray(img), 0.0, 1.0, path, "a floating-point", "[0, 1]")
        plane = np.round(plane.astype(np.float64) * 255)
    else:
        return np.asarray(img.convert("RGB")), gray
    return np.repeat(plane.clip(0, 255).astype(np.uint8)[..., None], 3, axis=2), gray


def _within(plane: np.ndarray, low, high, path, kind: str, allowed: str) -> np.ndarray:
    if not plane.size:
        return plane
    finite = bool(np.isfinite(plane).all())
    if not finite or plane.min() < low or plane.max() > high:
        found = f"values from {plane.min()} to {plane.max()}" if finite else "non-finite values"
        raise ImageError(
            f"image {path} is {kind} image with {found}; srdistill reads such images on "
            f"{allowed}: rescale it, or save it as an 8- or 16-bit PNG"
        )
    return plane


def _alpha(img: Image.Image) -> np.ndarray | None:
    if "A" not in img.getbands() and "transparency" not in img.info:
        return None
    return np.asarray(img.convert("RGBA").getchannel("A"))


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
