import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srdistill.data.images import to_uint8_image
from srdistill.data.matlab_bicubic import imresize
from srdistill.training.strip_images import (
    GAP,
    HEADER_HEIGHT,
    Region,
    common_crop_size,
    cut_region,
    most_detailed_region,
    render_strip,
    row_panels,
    upscale,
    window_sums,
)

SCALE, ZOOM = 2, 2


def flat_with_checkerboard(top: int, left: int, side: int) -> torch.Tensor:
    """A flat grey 64x64 HR image but for a 0/1 checkerboard square at (top, left)."""
    gt = torch.full((3, 64, 64), 0.5)
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    gt[:, top : top + side, left : left + side] = ((rows + cols) % 2).float()
    return gt


def constant(value: float):
    """An upscaler whose output is ``value`` everywhere (out of [0, 1] for some tests)."""
    return lambda lq: torch.full((1, 3, lq.shape[-2] * SCALE, lq.shape[-1] * SCALE), value)


def panel(strip: np.ndarray, index: int, width: int, row: int = 0) -> np.ndarray:
    top = HEADER_HEIGHT + row * (width + GAP)
    return strip[top : top + width, index * (width + GAP) : index * (width + GAP) + width]


def test_window_sums_are_each_windows_sum():
    values = torch.arange(12.0).reshape(3, 4)
    expected = torch.tensor([[0 + 1 + 4 + 5, 1 + 2 + 5 + 6, 2 + 3 + 6 + 7.0], [26, 30, 34]])
    torch.testing.assert_close(window_sums(values.double(), 2), expected.double())


@pytest.mark.parametrize("corner", [(32, 16), (0, 48), (44, 2)], ids=["middle", "edge", "low"])
def test_the_region_chosen_is_the_textured_square_every_time(corner):
    gt = flat_with_checkerboard(*corner, side=16)
    first = most_detailed_region(gt, SCALE, 16)
    assert first == Region(top=corner[0] // SCALE, left=corner[1] // SCALE, size=8)
    assert most_detailed_region(gt.clone(), SCALE, 16) == first


def test_a_flat_image_gives_the_first_square():
    assert most_detailed_region(torch.full((3, 20, 20), 0.3), SCALE, 8) == Region(0, 0, 4)


def test_a_crop_that_does_not_fit_names_the_option():
    with pytest.raises(ValueError, match=r"^callbacks\.samples\.crop_size: 15 HR pixels"):
        most_detailed_region(torch.rand(3, 20, 20), SCALE, 15)


def test_crop_size_shrinks_to_the_smallest_image_on_the_lr_grid():
    images = [(torch.rand(3, 7, 30), torch.rand(3, 14, 60)), (torch.rand(3, 20, 20), None)]
    assert common_crop_size(images, 128) == 14
    assert common_crop_size(images[:1], 9) == 8


def test_margin_gives_the_network_the_images_context():
    lq, gt = torch.rand(3, 12, 12), torch.rand(3, 24, 24)

    def blur_then_nearest(x):  # zero padding changes its output at the window's edges
        blurred = F.conv2d(x, torch.full((3, 1, 3, 3), 1 / 9), padding=1, groups=3)
        return F.interpolate(blurred, scale_factor=SCALE, mode="nearest")

    region = Region(top=3, left=4, size=5)
    whole = blur_then_nearest(lq[None])[0, :, 6:16, 8:18]
    torch.testing.assert_close(upscale(cut_region(lq, gt, region, 1), blur_then_nearest), whole)
    assert not torch.allclose(upscale(cut_region(lq, gt, region, 0), blur_then_nearest), whole)
    corner = cut_region(lq, gt, Region(0, 0, 5), margin=2)  # no context past the border
    assert corner.lq.shape[-2:] == (7, 7) and corner.offset == (0, 0)


def strip_of(teacher, rows: int = 1):
    lq, gt = torch.rand(3, 10, 12), torch.rand(3, 20, 24)
    crop = cut_region(lq, gt, Region(top=2, left=3, size=4), margin=2)
    strip, labels = render_strip(
        [row_panels(crop, teacher)] * rows, constant(0.75), "student, step 2", ZOOM
    )
    return strip, labels, lq, gt, crop


def zoomed(image: torch.Tensor) -> torch.Tensor:
    return image.repeat_interleave(ZOOM, 1).repeat_interleave(ZOOM, 2)


def test_panels_in_order_of_equal_width_with_a_teacher():
    strip, labels, lq, gt, crop = strip_of(teacher=constant(0.25))
    width = 4 * SCALE * ZOOM
    assert labels == ["LR (nearest)", "bicubic", "teacher", "student, step 2", "HR"]
    assert strip.shape == (HEADER_HEIGHT + width, 5 * width + 4 * GAP, 3)
    # the region: LR rows 2:6, cols 3:7; its context window starts at LR (0, 1)
    expected = [
        lq[:, 2:6, 3:7].repeat_interleave(SCALE, 1).repeat_interleave(SCALE, 2),
        imresize(crop.lq[None], scale=float(SCALE))[0, :, 4:12, 4:12].clamp(0, 1),
        torch.full((3, 8, 8), 0.25),
        torch.full((3, 8, 8), 0.75),
        gt[:, 4:12, 6:14],
    ]
    for index, image in enumerate(expected):
        np.testing.assert_array_equal(panel(strip, index, width), to_uint8_image(zoomed(image)))


def test_without_a_teacher_there_are_four_panels_and_no_teacher_column():
    strip, labels, _, gt, _ = strip_of(teacher=None, rows=2)
    width = 4 * SCALE * ZOOM
    assert labels == ["LR (nearest)", "bicubic", "student, step 2", "HR"]
    assert strip.shape == (HEADER_HEIGHT + 2 * width + GAP, 4 * width + 3 * GAP, 3)
    hr = to_uint8_image(zoomed(gt[:, 4:12, 6:14]))
    for row in (0, 1):
        np.testing.assert_array_equal(panel(strip, 3, width, row), hr)
        assert (panel(strip, 2, width, row) == 191).all()  # the student, 0.75


def test_every_column_is_labelled_in_the_header_band():
    strip, labels, *_ = strip_of(teacher=constant(0.25))
    width = 4 * SCALE * ZOOM
    for index in range(len(labels)):
        cell = strip[:HEADER_HEIGHT, index * (width + GAP) : index * (width + GAP) + width]
        assert cell.min() < 128 < cell.max()  # dark text on the white band


def test_strip_is_uint8_with_out_of_range_outputs_clipped():
    lq, gt = torch.rand(3, 10, 12), torch.rand(3, 20, 24)
    rows = [row_panels(cut_region(lq, gt, Region(0, 0, 4), margin=1), constant(-3.0))]
    strip, _ = render_strip(rows, constant(7.0), "student", ZOOM)
    width = 4 * SCALE * ZOOM
    assert strip.dtype == np.uint8
    assert (panel(strip, 2, width) == 0).all() and (panel(strip, 3, width) == 255).all()
