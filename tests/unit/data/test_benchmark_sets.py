"""BenchmarkDataset and available_sets on tiny sets in the EDSR/BasicSR benchmark layout."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from srdistill.data.benchmark_sets import STANDARD_SETS, BenchmarkDataset, available_sets
from srdistill.data.images import mod_crop, to_uint8_image
from srdistill.data.matlab_bicubic import imresize
from tests.helpers.images import write_png


def noise(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def lq_gt(item) -> tuple[np.ndarray, np.ndarray]:
    return to_uint8_image(item["lq"]), to_uint8_image(item["gt"])


class TestItems:
    @pytest.mark.parametrize("scale", [2, 3, 4])
    def test_hr_only_generates_bicubic_of_mod_cropped_hr(self, tmp_path, photo, scale):
        image = photo[:41, :43]
        write_png(tmp_path / "Set5" / "HR" / "bird.png", image)
        ds = BenchmarkDataset(tmp_path, "Set5", scale)
        assert len(ds) == 1
        item = ds[0]
        assert item["name"] == "bird" and item["gray"] is False
        lq, gt = lq_gt(item)
        np.testing.assert_array_equal(gt, mod_crop(image, scale))
        np.testing.assert_array_equal(lq, imresize(mod_crop(image, scale), scale=1 / scale))
        assert item["lq"].dtype == torch.float32 and item["gt"].dtype == torch.float32
        assert item["gt"].shape == (3, lq.shape[0] * scale, lq.shape[1] * scale)

    def test_odd_hr_is_mod_cropped(self, tmp_path, photo):
        write_png(tmp_path / "Set5" / "HR" / "odd.png", photo[:41, :43])
        item = BenchmarkDataset(tmp_path, "Set5", 4)[0]
        assert item["gt"].shape == (3, 40, 40)
        assert item["lq"].shape == (3, 10, 10)
        np.testing.assert_array_equal(to_uint8_image(item["gt"]), photo[:40, :40])

    def test_a_scale_above_the_image_side_names_scale_and_the_file(self, tmp_path, photo):
        write_png(tmp_path / "Set5" / "HR" / "small.png", photo[:41, :43])
        BenchmarkDataset(tmp_path, "Set5", 41)[0]  # one LR row: still an image
        with pytest.raises(ValueError, match=r"^scale=42: .*small\.png is 41x43 pixels"):
            BenchmarkDataset(tmp_path, "Set5", 42)[0]

    def test_lr_file_pixels_are_used(self, tmp_path, photo):
        scale = 2
        write_png(tmp_path / "Set14" / "HR" / "img.png", photo[:40, :42])
        # deliberately unrelated to the HR: only reading the file can give these pixels
        lr_file = noise((20, 21, 3), seed=0)
        write_png(tmp_path / "Set14" / "LR_bicubic" / "X2" / "imgx2.png", lr_file)
        lq, gt = lq_gt(BenchmarkDataset(tmp_path, "Set14", scale)[0])
        np.testing.assert_array_equal(lq, lr_file)
        np.testing.assert_array_equal(gt, photo[:40, :42])
        # the same set with LR files switched off generates the LR instead
        lq, _ = lq_gt(BenchmarkDataset(tmp_path, "Set14", scale, use_lr_files=False)[0])
        np.testing.assert_array_equal(lq, imresize(photo[:40, :42], scale=0.5))

    def test_lr_folder_of_another_scale_is_not_used(self, tmp_path, photo):
        write_png(tmp_path / "Set5" / "HR" / "img.png", photo[:24, :24])
        write_png(tmp_path / "Set5" / "LR_bicubic" / "X2" / "imgx2.png", noise((12, 12, 3), 1))
        lq, _ = lq_gt(BenchmarkDataset(tmp_path, "Set5", 4)[0])
        np.testing.assert_array_equal(lq, imresize(photo[:24, :24], scale=0.25))

    def test_image_without_lr_file_falls_back_to_generated(self, tmp_path, photo):
        write_png(tmp_path / "Set5" / "HR" / "a.png", photo[:24, :24])
        write_png(tmp_path / "Set5" / "HR" / "b.png", photo[-24:, -24:])
        lr_a = noise((12, 12, 3), seed=2)
        write_png(tmp_path / "Set5" / "LR_bicubic" / "X2" / "ax2.png", lr_a)
        ds = BenchmarkDataset(tmp_path, "Set5", 2)
        np.testing.assert_array_equal(lq_gt(ds[0])[0], lr_a)
        np.testing.assert_array_equal(lq_gt(ds[1])[0], imresize(photo[-24:, -24:], scale=0.5))

    def test_lr_of_wrong_size_names_the_file(self, tmp_path, photo):
        write_png(tmp_path / "Set5" / "HR" / "img.png", photo[:40, :40])
        lr_path = write_png(
            tmp_path / "Set5" / "LR_bicubic" / "X4" / "imgx4.png", noise((10, 11, 3), 3)
        )
        ds = BenchmarkDataset(tmp_path, "Set5", 4)
        with pytest.raises(ValueError, match=re.escape(str(lr_path))):
            ds[0]

    def test_gray_png_gives_three_equal_channels_and_flag(self, tmp_path, photo):
        luma = photo[:32, :36, 1]
        write_png(tmp_path / "Set14" / "HR" / "bridge.png", luma)  # mode L
        write_png(tmp_path / "Set14" / "HR" / "color.png", photo[:32, :36])
        ds = BenchmarkDataset(tmp_path, "Set14", 2)
        gray_item, color_item = ds[0], ds[1]
        assert (gray_item["name"], gray_item["gray"]) == ("bridge", True)
        assert (color_item["name"], color_item["gray"]) == ("color", False)
        lq, gt = lq_gt(gray_item)
        for c in range(3):
            np.testing.assert_array_equal(gt[..., c], luma)
            np.testing.assert_array_equal(lq[..., c], lq[..., 0])

    def test_files_sorted_and_only_png(self, tmp_path, photo):
        for name in ("zebra", "apple", "monkey"):
            write_png(tmp_path / "B100" / "HR" / f"{name}.png", photo[:16, :16])
        write_png(tmp_path / "B100" / "HR" / "other.jpg", photo[:16, :16])
        (tmp_path / "B100" / "HR" / "notes.txt").write_text("x")
        ds = BenchmarkDataset(tmp_path, "B100", 2)
        assert [ds[i]["name"] for i in range(len(ds))] == ["apple", "monkey", "zebra"]


class TestErrors:
    def test_missing_set_names_the_folder(self, tmp_path):
        write_png(tmp_path / "Set5" / "HR" / "a.png", noise((8, 8, 3), 4))
        with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "Set14" / "HR"))):
            BenchmarkDataset(tmp_path, "Set14", 2)

    def test_set_without_pngs_names_the_folder(self, tmp_path):
        (tmp_path / "Set5" / "HR").mkdir(parents=True)
        with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "Set5" / "HR"))):
            BenchmarkDataset(tmp_path, "Set5", 2)


class TestAvailableSets:
    def test_only_existing_sets_in_order_asked(self, tmp_path):
        for name in ("Set14", "Urban100", "Set5"):
            (tmp_path / name / "HR").mkdir(parents=True)
        (tmp_path / "B100").mkdir()  # no HR folder: not a usable set
        (tmp_path / "Manga109" / "HR").parent.mkdir()
        (tmp_path / "Manga109" / "HR").write_text("a file, not a folder")
        asked = ["Urban100", "Manga109", "B100", "Set5", "Set14"]
        assert available_sets(tmp_path, asked) == ["Urban100", "Set5", "Set14"]
        assert available_sets(str(tmp_path), tuple(reversed(asked))) == [
            "Set14",
            "Set5",
            "Urban100",
        ]
        assert available_sets(tmp_path, STANDARD_SETS) == ["Set5", "Set14", "Urban100"]

    def test_missing_root_or_nothing_asked(self, tmp_path):
        assert available_sets(tmp_path / "missing", STANDARD_SETS) == []
        assert available_sets(tmp_path, []) == []
