"""Sample strips: the same detailed squares of validation images, upscaled side by side.

Each row of a strip is one square of one image, chosen once: the square with the most gradient
energy (the most local detail), where the networks' progress shows. Panels, left to right: the
LR square nearest-upsampled to HR size, MATLAB bicubic, the teacher (left out when there is
none), the student, the HR square; all of one width, nearest-upsampled by a whole factor
(``zoom``) so that texture is visible, under a header band that names each.

The upscalers see ``margin`` LR pixels of the image around the square (fewer at its border) and
are cut to it after, so that a panel's edges are the image's, not a network's zero padding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from srdistill.data.images import to_uint8_image
from srdistill.data.matlab_bicubic import imresize

Upscaler = Callable[[torch.Tensor], torch.Tensor]  # (1, 3, h, w) LR -> (1, 3, h*s, w*s)

GAP = 4  # white pixels between panels and between rows
FONT_SIZE = 14
HEADER_HEIGHT = FONT_SIZE + 10
BACKGROUND, TEXT = (255, 255, 255), (0, 0, 0)


@dataclass(frozen=True)
class Region:
    """A square of ``size`` LR pixels at (``top``, ``left``) of an LR image: ``size * scale`` HR
    pixels at (``top * scale``, ``left * scale``)."""

    top: int
    left: int
    size: int


@dataclass
class RegionCrop:
    """The LR window a region's upscalers see, where the region sits in it, and its HR square."""

    lq: torch.Tensor  # (3, h, w): the region and up to ``margin`` LR pixels around it
    offset: tuple[int, int]  # the region's top-left corner in ``lq``, LR pixels
    size: int  # the region's side, LR pixels
    gt: torch.Tensor  # (3, size * scale, size * scale)
    scale: int


@dataclass
class RowPanels:
    """The panels of one row that do not change during training; ``teacher`` None without one."""

    crop: RegionCrop
    lr: torch.Tensor
    bicubic: torch.Tensor
    teacher: torch.Tensor | None
    hr: torch.Tensor


def gradient_energy(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) -> (H, W): squared differences of the channel mean to the right and below."""
    grey = image.detach().cpu().double().mean(0)
    energy = torch.zeros_like(grey)
    energy[:, :-1] += grey.diff(dim=1) ** 2
    energy[:-1, :] += grey.diff(dim=0) ** 2
    return energy


def window_sums(values: torch.Tensor, size: int) -> torch.Tensor:
    """Sums of ``values`` (H, W) over every ``size`` x ``size`` window, by top-left corner."""
    integral = F.pad(values.cumsum(0).cumsum(1), (1, 0, 1, 0))
    return (
        integral[size:, size:]
        - integral[:-size, size:]
        - integral[size:, :-size]
        + integral[:-size, :-size]
    )


def most_detailed_region(gt: torch.Tensor, scale: int, hr_size: int) -> Region:
    """The square of ``hr_size`` HR pixels on the LR grid of ``gt`` with the most gradient
    energy; of equals, the first in reading order (the same image gives the same region)."""
    if hr_size % scale or hr_size < scale or hr_size > min(gt.shape[-2:]):
        raise ValueError(
            f"callbacks.samples.crop_size: {hr_size} HR pixels is not a multiple of x{scale} "
            f"that fits a {gt.shape[-2]}x{gt.shape[-1]} image"
        )
    sums = window_sums(gradient_energy(gt), hr_size)[::scale, ::scale]
    row, col = divmod(int(sums.flatten().argmax()), sums.shape[1])
    return Region(top=row, left=col, size=hr_size // scale)


def common_crop_size(images: Sequence[tuple[torch.Tensor, torch.Tensor]], crop_size: int) -> int:
    """``crop_size`` HR pixels, less where an image is smaller, a multiple of the scale."""
    scale = images[0][1].shape[-1] // images[0][0].shape[-1]
    smallest = min(min(lq.shape[-2:]) for lq, _ in images) * scale
    return max(min(crop_size, smallest) // scale * scale, scale)


def cut_region(lq: torch.Tensor, gt: torch.Tensor, region: Region, margin: int) -> RegionCrop:
    """``region`` of the (LR, HR) pair, with up to ``margin`` LR pixels of context in ``lq``."""
    scale = gt.shape[-1] // lq.shape[-1]
    top, left = max(region.top - margin, 0), max(region.left - margin, 0)
    bottom = min(region.top + region.size + margin, lq.shape[-2])
    right = min(region.left + region.size + margin, lq.shape[-1])
    hr_top, hr_left, hr_size = region.top * scale, region.left * scale, region.size * scale
    return RegionCrop(
        lq=lq[:, top:bottom, left:right].float(),
        offset=(region.top - top, region.left - left),
        size=region.size,
        gt=gt[:, hr_top : hr_top + hr_size, hr_left : hr_left + hr_size].float(),
        scale=scale,
    )


@torch.no_grad()
def upscale(crop: RegionCrop, upscaler: Upscaler) -> torch.Tensor:
    """``upscaler``'s output on the crop's LR window, cut to the region, on [0, 1], on the CPU."""
    sr = upscaler(crop.lq[None])[0]
    top, left, side = (
        crop.offset[0] * crop.scale,
        crop.offset[1] * crop.scale,
        crop.size * crop.scale,
    )
    return sr[:, top : top + side, left : left + side].float().clamp(0, 1).cpu()


def nearest_lr(crop: RegionCrop) -> torch.Tensor:
    top, left, side = *crop.offset, crop.size
    square = crop.lq[None, :, top : top + side, left : left + side]
    return F.interpolate(square, scale_factor=crop.scale, mode="nearest")[0].clamp(0, 1)


def row_panels(crop: RegionCrop, teacher: Upscaler | None) -> RowPanels:
    """The fixed panels of one row: computed once, the teacher being frozen."""
    return RowPanels(
        crop=crop,
        lr=nearest_lr(crop),
        bicubic=upscale(crop, lambda x: imresize(x, scale=float(crop.scale))),
        teacher=upscale(crop, teacher) if teacher is not None else None,
        hr=crop.gt.clamp(0, 1),
    )


def strip_labels(has_teacher: bool, student_label: str) -> list[str]:
    """The header's labels, left to right."""
    teacher = ["teacher"] if has_teacher else []
    return ["LR (nearest)", "bicubic", *teacher, student_label, "HR"]


def render_strip(rows: Sequence[RowPanels], student: Upscaler, student_label: str, zoom: int):
    """The strip of ``rows`` with ``student``'s panels: (uint8 (H, W, 3), its labels)."""
    grid = []
    for row in rows:
        teacher = [row.teacher] if row.teacher is not None else []
        grid.append([row.lr, row.bicubic, *teacher, upscale(row.crop, student), row.hr])
    labels = strip_labels(rows[0].teacher is not None, student_label)
    return compose_strip(grid, labels, zoom), labels


def compose_strip(grid: Sequence[Sequence[torch.Tensor]], labels: Sequence[str], zoom: int):
    """Rows of equal-size (3, h, w) panels on [0, 1] -> uint8 (H, W, 3): each panel
    nearest-upsampled ``zoom`` times, ``GAP`` pixels apart, under a band of ``labels``."""
    height, width = (side * zoom for side in grid[0][0].shape[-2:])
    columns = len(labels)
    canvas = np.full(
        (HEADER_HEIGHT + len(grid) * (height + GAP) - GAP, columns * (width + GAP) - GAP, 3),
        BACKGROUND,
        np.uint8,
    )
    canvas[:HEADER_HEIGHT] = header_band(labels, width)
    for r, row in enumerate(grid):
        top = HEADER_HEIGHT + r * (height + GAP)
        for c, panel in enumerate(row):
            pixels = to_uint8_image(panel).repeat(zoom, axis=0).repeat(zoom, axis=1)
            canvas[top : top + height, c * (width + GAP) : c * (width + GAP) + width] = pixels
    return canvas


def header_band(labels: Sequence[str], width: int) -> np.ndarray:
    """uint8 (HEADER_HEIGHT, W, 3): each label over its column, clipped to it."""
    font = ImageFont.load_default(size=FONT_SIZE)
    band = Image.new("RGB", (len(labels) * (width + GAP) - GAP, HEADER_HEIGHT), BACKGROUND)
    for c, label in enumerate(labels):
        cell = Image.new("RGB", (width, HEADER_HEIGHT), BACKGROUND)
        ImageDraw.Draw(cell).text((4, 4), label, fill=TEXT, font=font)
        band.paste(cell, (c * (width + GAP), 0))
    return np.asarray(band)
