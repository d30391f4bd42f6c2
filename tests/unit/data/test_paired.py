"""PairedImageDataset and the image helpers it is built on.

Most tests use a nearest-neighbour pair: HR = kron(LR, ones(s, s)), so a correctly aligned HR patch
is exactly the nearest-neighbour upscale of its LR patch, whatever crop or flip was drawn.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

import srdistill.data.image_cache as image_cache_module
from srdistill.data.images import list_images, mod_crop, read_rgb, to_tensor, to_uint8_image
from srdistill.data.matlab_bicubic import imresize
from srdistill.data.paired import PairedImageDataset, random_aligned_crop, random_dihedral
from tests.helpers.images import write_png


def upscale_nearest(image: np.ndarray, scale: int) -> np.ndarray:
    return np.kron(image, np.ones((scale, scale, 1), dtype=np.uint8))


def noise(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def make_nearest_pairs(root, scale, lr_shapes):
    """``root/HR/000i.png`` and ``root/LR/X{s}/000ix{s}.png`` with HR = kron(LR); returns LRs."""
    lrs = {}
    for i, shape in enumerate(lr_shapes, start=1):
        lr = noise((*shape, 3), seed=i)
        write_png(root / "HR" / f"{i:04d}.png", upscale_nearest(lr, scale))
        write_png(root / "LR" / f"X{scale}" / f"{i:04d}x{scale}.png", lr)
        lrs[f"{i:04d}"] = lr
    return root / "HR", root / "LR" / f"X{scale}", lrs


def item_images(item) -> tuple[np.ndarray, np.ndarray]:
    return to_uint8_image(item["lq"]), to_uint8_image(item["gt"])


def find_window(big: np.ndarray, small: np.ndarray) -> list[tuple[int, int]]:
    """Every (top, left) where ``small`` occurs in ``big``."""
    h, w = small.shape[:2]
    return [
        (top, left)
        for top in range(big.shape[0] - h + 1)
        for left in range(big.shape[1] - w + 1)
        if np.array_equal(big[top : top + h, left : left + w], small)
    ]


def dihedral_variants(image: np.ndarray) -> list[np.ndarray]:
    return [np.rot90(img, k) for img in (image, image[:, ::-1]) for k in range(4)]


class TestAlignment:
    @pytest.mark.parametrize("scale", [2, 3, 4])
    @pytest.mark.parametrize("augment", [True, False])
    def test_every_patch_is_aligned(self, tmp_path, scale, augment):
        hr_root, lr_root, _ = make_nearest_pairs(tmp_path, scale, [(12, 15), (14, 11), (10, 10)])
        patch = 5
        ds = PairedImageDataset(hr_root, scale, patch, lr_root=lr_root, augment=augment, repeat=20)
        for index in range(len(ds)):
            item = ds[index]
            assert item["lq"].shape == (3, patch, patch)
            assert item["gt"].shape == (3, patch * scale, patch * scale)
            for key in ("lq", "gt"):
                assert item[key].dtype == torch.float32
                assert 0.0 <= item[key].min() and item[key].max() <= 1.0
            lq, gt = item_images(item)
            np.testing.assert_array_equal(gt, upscale_nearest(lq, scale))

    def test_unaugmented_patches_are_windows_at_matching_positions(self, tmp_path):
        scale = 2
        hr_root, lr_root, lrs = make_nearest_pairs(tmp_path, scale, [(16, 18)])
        lr = lrs["0001"]
        hr = upscale_nearest(lr, scale)
        ds = PairedImageDataset(hr_root, scale, 6, lr_root=lr_root, augment=False, repeat=30)
        positions = set()
        for index in range(len(ds)):
            lq, gt = item_images(ds[index])
            (top, left), *others = find_window(lr, lq)
            assert not others  # noise: each window is unique
            np.testing.assert_array_equal(
                gt, hr[top * scale : (top + 6) * scale, left * scale : (left + 6) * scale]
            )
            positions.add((top, left))
        assert len(positions) > 10  # crops are spread over the image

    def test_augmented_patches_are_dihedral_variants_of_windows(self, tmp_path):
        hr_root, lr_root, lrs = make_nearest_pairs(tmp_path, 2, [(12, 12)])
        lr = lrs["0001"]
        ds = PairedImageDataset(hr_root, 2, 4, lr_root=lr_root, augment=True, repeat=60)
        untransformed = 0
        for index in range(len(ds)):
            lq, _ = item_images(ds[index])
            matches = [k for k, v in enumerate(dihedral_variants(lq)) if find_window(lr, v)]
            assert matches, "patch is not a flipped/rotated window of the LR image"
            untransformed += find_window(lr, lq) != []
        assert 0 < untransformed < len(ds)  # some patches flipped/rotated, some not


class TestRandomAlignedCrop:
    def test_reaches_every_position_including_edges(self):
        scale, patch = 3, 3
        lr = noise((5, 6, 3), seed=0)
        hr = upscale_nearest(lr, scale)
        rng = torch.Generator().manual_seed(0)
        seen = set()
        for _ in range(300):
            lr_patch, hr_patch = random_aligned_crop(lr, hr, patch, scale, rng)
            (top, left), *_ = find_window(lr, lr_patch)
            seen.add((top, left))
            assert hr_patch.shape == (patch * scale, patch * scale, 3)
            np.testing.assert_array_equal(hr_patch, upscale_nearest(lr_patch, scale))
        assert seen == {(t, left) for t in range(3) for left in range(4)}

    def test_patch_equal_to_image_returns_whole_image(self):
        lr = noise((4, 4, 3), seed=1)
        hr = upscale_nearest(lr, 2)
        lr_patch, hr_patch = random_aligned_crop(lr, hr, 4, 2, torch.Generator().manual_seed(0))
        np.testing.assert_array_equal(lr_patch, lr)
        np.testing.assert_array_equal(hr_patch, hr)


class TestRandomDihedral:
    def test_all_eight_variants_are_drawn(self):
        image = np.arange(2 * 3 * 1, dtype=np.uint8).reshape(2, 3, 1)  # no symmetry at all
        expected = {(v.shape, v.tobytes()) for v in dihedral_variants(image)}
        assert len(expected) == 8
        rng = torch.Generator().manual_seed(0)
        drawn = {
            (out.shape, np.ascontiguousarray(out).tobytes())
            for out in (random_dihedral([image], rng)[0] for _ in range(200))
        }
        assert drawn == expected

    def test_same_transform_applied_to_every_image(self):
        scale = 2
        lr = noise((4, 5, 3), seed=2)
        hr = upscale_nearest(lr, scale)
        shifted = lr // 2 + 100
        rng = torch.Generator().manual_seed(1)
        for _ in range(50):
            out_lr, out_hr, out_shifted = random_dihedral([lr, hr, shifted], rng)
            np.testing.assert_array_equal(out_hr, upscale_nearest(out_lr, scale))
            np.testing.assert_array_equal(out_shifted, out_lr // 2 + 100)


class TestImageDiscovery:
    def test_recursive_search_sorted_and_mixed_formats(self, tmp_path):
        root = tmp_path / "hr"
        rgb = noise((16, 16, 3), seed=3)
        expected = [
            write_png(root / "b.png", rgb),
            write_png(root / "a" / "z.bmp", rgb),
            write_png(root / "a" / "deep" / "x.png", rgb),
            write_png(root / "c" / "photo.jpg", rgb),
            write_png(root / "c" / "PHOTO2.JPEG", rgb),
            write_png(root / "c" / "y.jpeg", rgb),
        ]
        (root / "notes.txt").write_text("not an image")
        (root / "a" / "array.npy").write_bytes(b"\x93NUMPY")
        (root / "c" / "png").mkdir()  # a folder, no suffix

        assert list_images(root) == sorted(expected)
        ds = PairedImageDataset(root, scale=2, lr_patch_size=4)
        assert ds.hr_files == sorted(expected)
        assert len(ds) == 6
        for index in range(len(ds)):
            lr, hr = ds.load_pair(index)
            np.testing.assert_array_equal(hr, read_rgb(ds.hr_files[index])[0])
            assert lr.shape == (8, 8, 3)

    def test_lr_found_recursively_by_div2k_name(self, tmp_path):
        scale = 4
        lr1, lr2 = noise((6, 7, 3), seed=4), noise((5, 5, 3), seed=5)
        write_png(tmp_path / "HR" / "0001.png", noise((24, 28, 3), seed=6))
        write_png(tmp_path / "HR" / "0002.png", noise((20, 20, 3), seed=7))
        write_png(tmp_path / "LR" / "part1" / "0001x4.png", lr1)
        write_png(tmp_path / "LR" / "part2" / "deeper" / "0002x4.png", lr2)
        write_png(tmp_path / "LR" / "0001x2.png", noise((12, 14, 3), seed=8))  # other scale
        ds = PairedImageDataset(tmp_path / "HR", scale, 4, lr_root=tmp_path / "LR")
        np.testing.assert_array_equal(ds.load_pair(0)[0], lr1)
        np.testing.assert_array_equal(ds.load_pair(1)[0], lr2)

    def test_missing_lr_file_names_folder_and_first_missing_image(self, tmp_path):
        for stem in ("0001", "0002", "0003"):
            write_png(tmp_path / "HR" / f"{stem}.png", noise((8, 8, 3), seed=9))
        write_png(tmp_path / "LR" / "0001x2.png", noise((4, 4, 3), seed=10))
        write_png(tmp_path / "LR" / "0003x3.png", noise((4, 4, 3), seed=11))  # wrong scale
        with pytest.raises(FileNotFoundError) as err:
            PairedImageDataset(tmp_path / "HR", 2, 2, lr_root=tmp_path / "LR")
        message = str(err.value)
        assert str(tmp_path / "LR") in message
        assert "0002.png" in message and "2 HR" in message

    def test_lr_of_wrong_size_names_the_file_when_built(self, tmp_path):
        write_png(tmp_path / "HR" / "0001.png", noise((16, 16, 3), seed=12))
        write_png(tmp_path / "LR" / "0001x2.png", noise((8, 7, 3), seed=13))
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / "LR" / "0001x2.png"))):
            PairedImageDataset(tmp_path / "HR", 2, 4, lr_root=tmp_path / "LR")

    def test_lr_of_wrong_size_by_one_pixel(self, tmp_path):
        # HR 17x16 is mod-cropped to 16x16 at x2; an LR of 9x8 (ceil) does not match
        write_png(tmp_path / "HR" / "0001.png", noise((17, 16, 3), seed=14))
        write_png(tmp_path / "LR" / "0001x2.png", noise((9, 8, 3), seed=15))
        with pytest.raises(ValueError, match="0001x2.png.* is 9x8, not 8x8"):
            PairedImageDataset(tmp_path / "HR", 2, 4, lr_root=tmp_path / "LR")

    def test_lr_replaced_after_building_is_caught_when_served(self, tmp_path):
        write_png(tmp_path / "HR" / "0001.png", noise((16, 16, 3), seed=12))
        lr_path = write_png(tmp_path / "LR" / "0001x2.png", noise((8, 8, 3), seed=13))
        ds = PairedImageDataset(tmp_path / "HR", 2, 4, lr_root=tmp_path / "LR")
        write_png(lr_path, noise((8, 7, 3), seed=13))
        with pytest.raises(ValueError) as err:
            ds.load_pair(0)
        message = str(err.value)
        assert str(lr_path) in message and str(tmp_path / "HR" / "0001.png") in message


class TestGeneratedLR:
    @pytest.mark.parametrize("scale", [2, 3, 4])
    def test_equals_bicubic_of_mod_cropped_hr(self, tmp_path, photo, scale):
        image = photo[:45, :59]  # odd sizes: mod-crop matters for every scale
        write_png(tmp_path / "hr" / "photo.png", image)
        ds = PairedImageDataset(tmp_path / "hr", scale, 4)
        lr, hr = ds.load_pair(0)
        np.testing.assert_array_equal(hr, mod_crop(image, scale))
        np.testing.assert_array_equal(lr, imresize(mod_crop(image, scale), scale=1 / scale))
        assert lr.dtype == np.uint8
        assert (lr.shape[0] * scale, lr.shape[1] * scale) == hr.shape[:2]

    def test_memory_cache_avoids_recomputing(self, tmp_path, photo, monkeypatch):
        write_png(tmp_path / "hr" / "photo.png", photo[:32, :32])
        ds = PairedImageDataset(tmp_path / "hr", 2, 4)
        first = ds.load_pair(0)[0].copy()

        def fail(*args, **kwargs):
            raise AssertionError("imresize called again")

        monkeypatch.setattr(image_cache_module, "imresize", fail)
        np.testing.assert_array_equal(ds.load_pair(0)[0], first)
        ds[0]  # a patch from the cached LR

    def test_disk_cache_written_and_read_back(self, tmp_path, photo, monkeypatch):
        hr_root, cache = tmp_path / "hr", tmp_path / "cache"
        write_png(hr_root / "sub" / "photo.png", photo[:40, :36])
        first = PairedImageDataset(hr_root, 4, 4, lr_cache_dir=cache)
        expected = first.load_pair(0)[0]
        cached = sorted(cache.rglob("*.npy"))
        digest = first.source_digest(hr_root / "sub" / "photo.png")
        assert [p.name for p in cached] == [f"photo.png.{digest[:32]}.x4.lr.npy"]
        assert cached == [first.lr_cache_path(0)]
        assert cached[0].parent.name == "sub" and cached[0].parent.parent.name == "X4"
        assert not list(cache.rglob("*.tmp*"))
        np.testing.assert_array_equal(np.load(cached[0], allow_pickle=False), expected)

        def fail(*args, **kwargs):
            raise AssertionError("imresize called although the LR is cached on disk")

        monkeypatch.setattr(image_cache_module, "imresize", fail)
        second = PairedImageDataset(hr_root, 4, 4, lr_cache_dir=cache)
        np.testing.assert_array_equal(second.load_pair(0)[0], expected)
        item = second[0]
        lq, gt = item_images(item)
        assert lq.shape == (4, 4, 3) and gt.shape == (16, 16, 3)

    def test_disk_cache_separates_hr_roots_with_same_file_names(self, tmp_path, photo):
        cache = tmp_path / "cache"
        write_png(tmp_path / "one" / "0001.png", photo[:32, :32])
        write_png(tmp_path / "two" / "0001.png", photo[-32:, -32:])
        lr_one = PairedImageDataset(tmp_path / "one", 2, 4, lr_cache_dir=cache).load_pair(0)[0]
        lr_two = PairedImageDataset(tmp_path / "two", 2, 4, lr_cache_dir=cache).load_pair(0)[0]
        np.testing.assert_array_equal(lr_one, imresize(photo[:32, :32], scale=0.5))
        np.testing.assert_array_equal(lr_two, imresize(photo[-32:, -32:], scale=0.5))
        assert len(list(cache.rglob("*.lr.npy"))) == 2

    def test_disk_cache_separates_files_differing_only_in_suffix(self, tmp_path, photo):
        cache = tmp_path / "cache"
        write_png(tmp_path / "hr" / "a.png", photo[:32, :32])
        write_png(tmp_path / "hr" / "a.bmp", photo[-40:, -36:])  # lossless, another size
        ds = PairedImageDataset(tmp_path / "hr", 2, 4, lr_cache_dir=cache)
        assert [p.name for p in ds.hr_files] == ["a.bmp", "a.png"]
        for index in range(2):
            lr, hr = ds.load_pair(index)
            np.testing.assert_array_equal(lr, imresize(hr, scale=0.5))

    def test_disk_cache_separates_scales(self, tmp_path, photo):
        cache = tmp_path / "cache"
        write_png(tmp_path / "hr" / "0001.png", photo[:48, :48])
        for scale in (2, 3, 4):
            lr = PairedImageDataset(tmp_path / "hr", scale, 4, lr_cache_dir=cache).load_pair(0)[0]
            assert lr.shape == (48 // scale, 48 // scale, 3)
        assert sorted(p.parent.name for p in cache.rglob("*.lr.npy")) == ["X2", "X3", "X4"]


class TestErrorsAndLength:
    def test_patch_larger_than_lr_names_the_file_when_built(self, tmp_path):
        path = write_png(tmp_path / "hr" / "small.png", noise((21, 24, 3), seed=16))
        with pytest.raises(ValueError, match=re.escape(str(path)) + ".*too small"):
            PairedImageDataset(tmp_path / "hr", 2, 11)  # LR is 10x12 (mod-cropped HR 20x24)
        PairedImageDataset(tmp_path / "hr", 2, 10)[0]  # the largest patch that fits

    @pytest.mark.parametrize(
        "kwargs", [{"scale": 0}, {"lr_patch_size": 0}, {"repeat": 0}, {"scale": -2}]
    )
    def test_non_positive_arguments_rejected(self, tmp_path, kwargs):
        write_png(tmp_path / "hr" / "a.png", noise((8, 8, 3), seed=17))
        args = {"scale": 2, "lr_patch_size": 2, "repeat": 1} | kwargs
        with pytest.raises(ValueError):
            PairedImageDataset(tmp_path / "hr", **args)

    def test_missing_hr_folder(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope"))):
            PairedImageDataset(tmp_path / "nope", 2)

    def test_repeat_multiplies_length_and_wraps_indices(self, tmp_path):
        hr_root, lr_root, lrs = make_nearest_pairs(tmp_path, 2, [(6, 6), (6, 6), (6, 6)])
        ds = PairedImageDataset(hr_root, 2, 6, lr_root=lr_root, augment=False, repeat=4)
        assert len(ds) == 12
        assert len(PairedImageDataset(hr_root, 2, 6, lr_root=lr_root)) == 3
        for index in range(len(ds)):
            lq, _ = item_images(ds[index])  # patch == whole LR: the crop is deterministic
            np.testing.assert_array_equal(lq, lrs[f"{index % 3 + 1:04d}"])


class TestSeeding:
    @staticmethod
    def crops(hr_root, lr_root, seed):
        torch.manual_seed(seed)
        ds = PairedImageDataset(hr_root, 2, 4, lr_root=lr_root, repeat=8)
        return [item_images(ds[i])[0] for i in range(len(ds))]

    def test_same_seed_same_crops_different_seed_different_crops(self, tmp_path):
        hr_root, lr_root, _ = make_nearest_pairs(tmp_path, 2, [(32, 32)])
        a = self.crops(hr_root, lr_root, seed=1)
        b = self.crops(hr_root, lr_root, seed=1)
        c = self.crops(hr_root, lr_root, seed=2)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
        assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))
        # draws go on from one generator: successive items of one instance differ
        assert len({x.tobytes() for x in a}) > 1


class TestImageHelpers:
    def test_read_rgb_corrupt_file_names_it(self, tmp_path):
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"this is not a PNG")
        with pytest.raises(ValueError, match=re.escape(str(bad))):
            read_rgb(bad)

    def test_read_rgb_truncated_file_names_it(self, tmp_path, photo):
        good = write_png(tmp_path / "good.png", photo)
        truncated = tmp_path / "truncated.png"
        truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        with pytest.raises(ValueError, match=re.escape(str(truncated))):
            read_rgb(truncated)

    def test_read_rgb_missing_file_names_it(self, tmp_path):
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / "gone.png"))):
            read_rgb(tmp_path / "gone.png")

    def test_read_rgb_modes(self, tmp_path, photo):
        rgb, gray = read_rgb(write_png(tmp_path / "rgb.png", photo))
        np.testing.assert_array_equal(rgb, photo)
        assert rgb.dtype == np.uint8 and gray is False
        luma = photo[..., 1]
        out, gray = read_rgb(write_png(tmp_path / "l.png", luma))
        assert gray is True and out.shape == (*luma.shape, 3)
        for c in range(3):
            np.testing.assert_array_equal(out[..., c], luma)
        rgba_path = tmp_path / "rgba.png"
        Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])).save(rgba_path)
        out, gray = read_rgb(rgba_path)
        assert gray is False
        np.testing.assert_array_equal(out, photo)

    def test_read_rgb_16_bit_gray_is_scaled_not_clipped(self, tmp_path):
        ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1040).astype(np.uint16)
        path = tmp_path / "gray16.png"
        Image.fromarray(ramp).save(path)
        with Image.open(path) as img:
            assert img.mode == "I;16"
        out, gray = read_rgb(path)
        assert gray is True and out.dtype == np.uint8
        # 8-bit equivalent of each 16-bit value, to within rounding (x / 257 or x >> 8)
        assert np.abs(out[..., 0].astype(float) - ramp / 257.0).max() <= 1.0

    def test_list_images_empty_or_missing_folder(self, tmp_path):
        empty = tmp_path / "empty"
        empty.mkdir()
        (empty / "readme.txt").write_text("no images")
        with pytest.raises(FileNotFoundError, match=re.escape(str(empty))):
            list_images(empty)
        with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing"))):
            list_images(tmp_path / "missing")

    @pytest.mark.parametrize("scale", [1, 2, 3, 4])
    def test_mod_crop(self, photo, scale):
        image = photo[:43, :41]
        out = mod_crop(image, scale)
        assert out.shape == (43 - 43 % scale, 41 - 41 % scale, 3)
        np.testing.assert_array_equal(out, image[: out.shape[0], : out.shape[1]])

    def test_tensor_round_trip_is_exact(self, photo):
        every_value = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
        for image in (photo, every_value, photo[::2, ::3]):  # incl. a non-contiguous view
            tensor = to_tensor(image)
            assert tensor.shape == (3, *image.shape[:2]) and tensor.dtype == torch.float32
            assert 0.0 <= tensor.min() and tensor.max() <= 1.0
            back = to_uint8_image(tensor)
            assert back.dtype == np.uint8
            np.testing.assert_array_equal(back, image)

    def test_to_uint8_image_clamps_and_rounds(self):
        tensor = torch.tensor([-0.5, 0.0, 0.4 / 255, 0.6 / 255, 1.0, 2.0]).view(1, 1, 6)
        out = to_uint8_image(tensor.expand(3, 1, 6))
        np.testing.assert_array_equal(out[0, :, 0], [0, 0, 0, 1, 255, 255])


def test_keep_in_memory_serves_the_same_patches_and_decodes_each_image_once(
    tmp_path, photo, monkeypatch
):
    write_png(tmp_path / "a.png", photo)
    write_png(tmp_path / "b.png", photo[:, ::-1])
    from_disk = PairedImageDataset(tmp_path, scale=2, lr_patch_size=16)
    in_memory = PairedImageDataset(tmp_path, scale=2, lr_patch_size=16, keep_in_memory=True)
    reads = []
    original = image_cache_module.read_rgb
    monkeypatch.setattr(image_cache_module, "read_rgb", lambda p: reads.append(p) or original(p))
    for seed in range(6):
        expected, served = from_disk[(seed % 2, seed)], in_memory[(seed % 2, seed)]
        assert all(torch.equal(expected[k], served[k]) for k in ("lq", "gt"))
    assert len(reads) == 6 + 2  # every item from disk; each image once in memory
