"""Training data checked when the dataset is built, and LR caches that follow the HR content."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from srdistill.data.matlab_bicubic import imresize
from srdistill.data.paired import PairedImageDataset
from srdistill.data.validation import SHOWN_BAD_IMAGES, image_size
from tests.helpers.images import write_png


def noise(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def write_bad_folder(root):
    """Two good 32x32 photos and the three classic bad files; returns the bad paths."""
    write_png(root / "good1.png", noise((32, 32, 3), 1))
    write_png(root / "sub" / "good2.png", noise((32, 40, 3), 2))
    tiny = write_png(root / "tiny.png", noise((1, 1, 3), 3))
    truncated = root / "sub" / "truncated.png"
    whole = encoded(noise((32, 32, 3), 4), "PNG")
    truncated.write_bytes(whole[: len(whole) // 2])
    text = root / "notes.png"
    text.write_text("this is not an image")
    return [tiny, truncated, text]


class TestUpFrontValidation:
    def test_all_bad_images_are_listed_in_one_error(self, tmp_path):
        bad = write_bad_folder(tmp_path)
        with pytest.raises(ValueError) as err:
            PairedImageDataset(tmp_path, scale=2, lr_patch_size=8)
        message = str(err.value)
        assert "\n" not in message
        assert message.count(str(tmp_path)) == 1 + len(bad)  # the folder, then each file once
        for path in bad:
            assert str(path) in message
        assert "3 unusable" in message and "data.on_bad_image=skip" in message
        assert "good1" not in message and "good2" not in message
        assert "too small" in message and "unreadable" in message

    def test_skip_trains_on_the_rest_with_one_warning(self, tmp_path):
        bad = write_bad_folder(tmp_path)
        with pytest.warns(UserWarning) as caught:
            ds = PairedImageDataset(tmp_path, 2, 8, on_bad_image="skip", augment=False)
        assert len(caught) == 1
        for path in bad:
            assert str(path) in str(caught[0].message)
        assert [p.name for p in ds.hr_files] == ["good1.png", "good2.png"]
        assert len(ds) == 2
        for index in range(len(ds)):
            item = ds[index]
            assert item["lq"].shape == (3, 8, 8) and item["gt"].shape == (3, 16, 16)

    def test_skip_with_nothing_left_is_an_error(self, tmp_path):
        write_png(tmp_path / "tiny.png", noise((3, 3, 3), 5))
        with pytest.raises(ValueError, match="none would be left"):
            PairedImageDataset(tmp_path, 2, 8, on_bad_image="skip")

    def test_good_folder_builds_without_warning(self, tmp_path):
        write_png(tmp_path / "a.png", noise((16, 16, 3), 6))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert len(PairedImageDataset(tmp_path, 2, 8, on_bad_image="skip")) == 1

    def test_many_bad_images_show_the_first_few_and_the_count(self, tmp_path):
        write_png(tmp_path / "good.png", noise((16, 16, 3), 7))
        for i in range(SHOWN_BAD_IMAGES + 3):
            write_png(tmp_path / f"small{i:02d}.png", noise((10, 16, 3), i))
        with pytest.raises(ValueError) as err:
            PairedImageDataset(tmp_path, 2, 8)
        message = str(err.value)
        assert f"{SHOWN_BAD_IMAGES + 3} unusable" in message and "and 3 more" in message
        assert "small04.png" in message and "small05.png" not in message

    def test_size_limit_is_patch_times_scale_after_mod_crop(self, tmp_path):
        # 4x4 LR patches at x3 need 12 HR pixels; 14 mod-crops to 12 (fits), 11 does not
        write_png(tmp_path / "ok" / "a.png", noise((14, 12, 3), 8))
        write_png(tmp_path / "small" / "a.png", noise((12, 11, 3), 9))
        assert len(PairedImageDataset(tmp_path / "ok", 3, 4)) == 1
        with pytest.raises(ValueError, match=r"12x11 gives a 4x3 LR at x3"):
            PairedImageDataset(tmp_path / "small", 3, 4)

    def test_truncated_jpeg_is_found(self, tmp_path):
        whole = encoded(noise((64, 64, 3), 10), "JPEG")
        (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
        (tmp_path / "fine.jpg").write_bytes(whole)
        assert image_size(tmp_path / "fine.jpg") == (64, 64)
        with pytest.raises(ValueError, match="unreadable"):
            image_size(tmp_path / "cut.jpg")

    def test_broken_lr_file_is_reported_with_its_hr(self, tmp_path):
        hr = write_png(tmp_path / "HR" / "0001.png", noise((16, 16, 3), 11))
        whole = encoded(noise((8, 8, 3), 12), "PNG")
        (tmp_path / "LR").mkdir()
        (tmp_path / "LR" / "0001x2.png").write_bytes(whole[:-20])
        with pytest.raises(ValueError) as err:
            PairedImageDataset(tmp_path / "HR", 2, 4, lr_root=tmp_path / "LR")
        assert str(hr) in str(err.value) and "0001x2.png" in str(err.value)

    def test_unknown_policy_is_rejected(self, tmp_path):
        write_png(tmp_path / "a.png", noise((16, 16, 3), 13))
        with pytest.raises(ValueError, match="on_bad_image"):
            PairedImageDataset(tmp_path, 2, 8, on_bad_image="ignore")


class TestCacheFollowsContent:
    def test_replaced_hr_gets_a_new_lr(self, tmp_path, photo):
        hr_root, cache = tmp_path / "hr", tmp_path / "cache"
        path = write_png(hr_root / "0001.png", photo[:64, :64])
        old_lr = PairedImageDataset(hr_root, 4, 4, lr_cache_dir=cache).load_pair(0)[0]
        assert old_lr.shape == (16, 16, 3)

        write_png(path, photo[:32, :48])  # another image of the same name and another size
        ds = PairedImageDataset(hr_root, 4, 4, lr_cache_dir=cache)
        lr, hr = ds.load_pair(0)
        np.testing.assert_array_equal(hr, photo[:32, :48])
        np.testing.assert_array_equal(lr, imresize(photo[:32, :48], scale=0.25))
        assert len(list(cache.rglob("*.lr.npy"))) == 2  # the old entry is not served, not reused

    def test_replaced_hr_with_the_old_size_and_mtime_gets_a_new_lr(self, tmp_path, photo):
        """Same name, pixel size, byte size and mtime (``touch -r``): only the bytes differ."""
        hr_root, cache = tmp_path / "hr", tmp_path / "cache"
        old, new = photo[:64, :64], np.ascontiguousarray(photo[:64, :64][::-1])
        path = hr_root / "0001.bmp"  # BMP: the byte size follows from the pixel size
        hr_root.mkdir()
        path.write_bytes(encoded(old, "BMP"))
        stat = path.stat()
        PairedImageDataset(hr_root, 4, 4, lr_cache_dir=cache).load_pair(0)
        path.write_bytes(encoded(new, "BMP"))
        assert path.stat().st_size == stat.st_size
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        lr, hr = PairedImageDataset(hr_root, 4, 4, lr_cache_dir=cache).load_pair(0)
        np.testing.assert_array_equal(hr, new)
        np.testing.assert_array_equal(lr, imresize(new, scale=0.25))

    def test_foreign_file_in_place_of_a_cache_entry_is_replaced(self, tmp_path, photo):
        hr_root, cache = tmp_path / "hr", tmp_path / "cache"
        write_png(hr_root / "0001.png", photo[:64, :64])
        ds = PairedImageDataset(hr_root, 4, 4, lr_cache_dir=cache)
        cached = ds.lr_cache_path(0)
        cached.parent.mkdir(parents=True)
        np.save(cached, photo[:16, :16])  # an LR of the right size, not this HR's: no trailer
        lr, _ = ds.load_pair(0)
        np.testing.assert_array_equal(lr, imresize(photo[:64, :64], scale=0.25))
        np.testing.assert_array_equal(np.load(cached), lr)  # rewritten: the next run reads it
