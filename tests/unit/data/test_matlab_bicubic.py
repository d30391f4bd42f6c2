import numpy as np
import pytest
import torch

from srdistill.data.matlab_bicubic import (
    _round_uint8,
    cubic,
    imresize,
    output_length,
    resize_matrix,
)


class TestCubicKernel:
    def test_hand_computed_values(self):
        t = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5])
        # 1.5|t|^3 - 2.5|t|^2 + 1 inside 1; -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2 in (1, 2]
        expected = np.array([1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625])
        np.testing.assert_allclose(cubic(t), expected, atol=1e-12)


class TestResizeMatrix:
    @pytest.mark.parametrize("n, scale", [(16, 0.5), (17, 1 / 3), (20, 0.25), (7, 2.0), (9, 3.0)])
    def test_rows_sum_to_one_and_size_is_ceil(self, n, scale):
        out = output_length(n, scale)
        assert out == int(np.ceil(n * scale - 1e-9))
        matrix = resize_matrix(n, out, scale)
        assert matrix.shape == (out, n)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)

    def test_antialiased_kernel_is_wider_when_shrinking(self):
        # x4 shrink: the stretched kernel spans 16 input pixels, the plain one 4
        wide = resize_matrix(64, 16, 0.25, antialias=True)
        narrow = resize_matrix(64, 16, 0.25, antialias=False)
        assert (np.abs(wide[8]) > 1e-12).sum() > (np.abs(narrow[8]) > 1e-12).sum()

    def test_linear_ramp_is_sampled_at_matlab_coordinates(self):
        # A symmetric normalised kernel reproduces a linear function: away from the borders,
        # output x (1-based) of a x2 shrink sits at input coordinate u = 2x - 0.5.
        ramp = np.arange(1, 33, dtype=np.float64)
        out = resize_matrix(32, 16, 0.5) @ ramp
        x = np.arange(1, 17)
        np.testing.assert_allclose(out[3:-3], (2 * x - 0.5)[3:-3], atol=1e-9)

    def test_borders_mirror_with_edge_repetition(self):
        # index 0 reflects to 1 and -1 to 2 (1-based): the first row only uses in-range columns
        matrix = resize_matrix(10, 5, 0.5)
        assert matrix.shape[1] == 10 and np.all(np.isfinite(matrix))


class TestImresize:
    def test_constant_image_stays_constant(self):
        image = np.full((24, 20, 3), 77, np.uint8)
        for scale in (0.5, 1 / 3, 0.25, 2.0):
            out = imresize(image, scale=scale)
            assert out.dtype == np.uint8 and np.all(out == 77)

    def test_output_size_follows_matlab_ceil(self):
        out = imresize(np.zeros((17, 10), np.uint8), scale=1 / 3)
        assert out.shape == (6, 4)

    def test_round_half_away_from_zero(self):
        np.testing.assert_array_equal(
            _round_uint8(np.array([2.5, 3.5, 254.5, -3.0, 300.0])), [3, 4, 255, 0, 255]
        )

    def test_numpy_and_torch_agree_on_uint8(self, photo):
        expected = imresize(photo, scale=0.25)
        tensor = torch.from_numpy(photo).permute(2, 0, 1)[None]  # (1, 3, H, W)
        got = imresize(tensor, scale=0.25)[0].permute(1, 2, 0).numpy()
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)

    def test_float_input_is_not_rounded(self, photo):
        image = photo.astype(np.float64) / 255
        out = imresize(image, scale=0.5)
        assert out.dtype == np.float64
        assert np.abs(out * 255 - np.round(out * 255)).max() > 1e-3

    def test_emulate_uint8_matches_uint8_path(self, photo):
        small = imresize(photo, scale=0.25)
        as_float = torch.from_numpy(small).permute(2, 0, 1)[None].double() / 255
        emulated = imresize(as_float, scale=4.0, emulate_uint8=True)
        real = imresize(torch.from_numpy(small).permute(2, 0, 1)[None], scale=4.0)
        np.testing.assert_array_equal((emulated * 255).round().byte().numpy(), real.numpy())

    def test_batched_tensor_equals_per_image(self, photo):
        batch = torch.from_numpy(photo).permute(2, 0, 1).float().div(255)[None].repeat(2, 1, 1, 1)
        batch[1] = batch[1].flip(-1)
        out = imresize(batch, scale=0.5)
        np.testing.assert_allclose(out[1].numpy(), imresize(batch[1:], scale=0.5)[0].numpy())

    def test_bad_arguments_raise(self):
        with pytest.raises(ValueError, match="exactly one"):
            imresize(np.zeros((4, 4)), scale=0.5, out_hw=(2, 2))
        with pytest.raises(ValueError, match="positive"):
            imresize(np.zeros((4, 4)), scale=-1)
        with pytest.raises(ValueError, match="H, W"):
            imresize(np.zeros((2, 4, 4, 3)), scale=0.5)
