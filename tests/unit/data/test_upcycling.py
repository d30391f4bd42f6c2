"""DUKD's data upcycling: tiles re-assemble exactly, every augmentation subset inverts exactly."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from srdistill.data.matlab_bicubic import imresize
from srdistill.data.upcycling import (
    AUGMENT_OPS,
    assemble_tiles,
    augment,
    hr_tiles,
    invert_augment,
    sample_augment_ops,
    zoom_in,
    zoom_out,
    zoom_out_target,
)

SUBSETS = list(itertools.product([False, True], repeat=len(AUGMENT_OPS)))


def images(n=16, size=6):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("subset", SUBSETS)
def test_every_op_subset_inverts_exactly(subset):
    u = images(2)
    ops = torch.tensor([subset, subset])
    assert torch.equal(invert_augment(augment(u, ops), ops), u)


def test_each_sample_gets_its_own_ops_and_its_own_inverse():
    u = images(len(SUBSETS))
    ops = torch.tensor(SUBSETS)
    augmented = augment(u, ops)
    assert torch.equal(invert_augment(augmented, ops), u)
    assert torch.equal(augmented[0], u[0])  # the empty subset leaves its sample alone
    assert torch.equal(augmented[1], u[1].transpose(-2, -1))  # (F, F, F, T): transpose only
    assert torch.equal(augmented[8], 1 - u[8])  # (T, F, F, F): colour inversion only


def test_reapplying_in_the_same_order_is_not_the_inverse():
    # the released code's "inverse": transpose with one flip comes back rotated by 180 degrees
    u = images(1)
    ops = torch.tensor([[False, True, False, True]])
    wrong = augment(augment(u, ops), ops)
    assert torch.equal(wrong, u.flip(-2, -1)) and not torch.equal(wrong, u)


def test_the_inverse_undoes_the_ops_on_an_upscaled_output():
    # how the loss uses it: ops on the LR tile, inverse on the network's output
    u = images(len(SUBSETS))
    ops = torch.tensor(SUBSETS)
    up = F.interpolate(augment(u, ops), scale_factor=3, mode="nearest")
    assert torch.equal(invert_augment(up, ops), F.interpolate(u, scale_factor=3, mode="nearest"))


def test_ops_are_drawn_with_their_probability():
    g = torch.Generator().manual_seed(0)
    assert not sample_augment_ops(50, 0.0, g).any()
    assert sample_augment_ops(50, 1.0, g).all()
    assert sample_augment_ops(4000, 0.3, g).float().mean().item() == pytest.approx(0.3, abs=0.02)
    with pytest.raises(ValueError, match="probability"):
        sample_augment_ops(4, 1.5)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_all_tiles_reassemble_the_hr_patch(scale):
    y = torch.rand(2, 3, 5 * scale, 4 * scale)
    tiles = hr_tiles(y, scale)
    assert tiles.shape == (scale * scale, 2, 3, 5, 4)
    assert torch.equal(tiles[scale + 1], y[:, :, 5:10, 4:8])  # row 1, column 1 of the grid
    assert torch.equal(assemble_tiles(tiles, scale), y)


def test_zoom_in_picks_distinct_tiles_shared_by_the_batch():
    y = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    tiles = hr_tiles(y, 2)
    u = zoom_in(y, 2, n_sub=3, generator=torch.Generator().manual_seed(1))
    assert u.shape == (6, 3, 4, 4)
    picked = [next(k for k in range(4) if torch.equal(u[2 * i], tiles[k, 0])) for i in range(3)]
    assert len(set(picked)) == 3  # without replacement
    for i, k in enumerate(picked):
        assert torch.equal(u[2 * i + 1], tiles[k, 1])  # the same tile of the second image
    again = zoom_in(y, 2, n_sub=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(u, again)
    with pytest.raises(ValueError, match="n_sub"):
        zoom_in(y, 2, n_sub=5)


def test_zoom_out_is_the_matlab_bicubic_shrink():
    x = torch.rand(2, 3, 12, 12)
    small = zoom_out(x, 3)
    assert small.shape == (2, 3, 4, 4)
    assert torch.equal(small, imresize(x, scale=1 / 3))
    flat = torch.full((1, 3, 8, 8), 0.25)
    assert torch.allclose(zoom_out(flat, 2), torch.full((1, 3, 4, 4), 0.25))


def test_zoom_out_crops_a_size_the_scale_does_not_divide():
    x = torch.rand(1, 3, 13, 10)
    assert zoom_out(x, 4).shape == (1, 3, 3, 2)
    assert torch.equal(zoom_out_target(x, 4), x[..., :12, :8])
    with pytest.raises(ValueError, match="smaller than scale"):
        zoom_out(torch.rand(1, 3, 3, 3), 4)
