"""The decoded-image cache (``decoded_cache=True``): uint8 .npy files read memory-mapped.

A cached read must equal a fresh decode, a changed source must never be served from an old entry,
and a cache file that is not exactly what the cache writes (half-written, truncated, another
dtype or size, pickled objects) must be ignored and rewritten, never unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import srdistill.data.paired as paired_module
from srdistill.data.bicubic import imresize
from srdistill.data.decoded_cache import read_decoded, write_decoded
from srdistill.data.images import mod_crop
from srdistill.data.paired import PairedImageDataset
from tests.helpers.images import write_png

SCALE, PATCH = 4, 6


def forbid(monkeypatch, *names: str) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("decoded or resized although the cache holds the image")

    for name in names:
        monkeypatch.setattr(paired_module, name, fail)


def folder(tmp_path: Path, image: np.ndarray) -> Path:
    write_png(tmp_path / "hr" / "sub" / "photo.png", image)
    return tmp_path / "hr"


def dataset(hr_root: Path, cache: Path, **kwargs) -> PairedImageDataset:
    return PairedImageDataset(hr_root, SCALE, PATCH, lr_cache_dir=cache, **kwargs)


class Payload:
    """Unpickling this creates ``marker``: proof that a cache file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class TestServedValues:
    def test_cached_reads_equal_uncached_reads(self, tmp_path, photo, monkeypatch):
        image = photo[:45, :59]  # odd sizes: the HR is stored mod-cropped
        hr_root, cache = folder(tmp_path, image), tmp_path / "cache"
        plain = dataset(hr_root, tmp_path / "plain_cache")
        first = dataset(hr_root, cache, decoded_cache=True)
        lr, hr = first.load_pair(0)
        np.testing.assert_array_equal(hr, mod_crop(image, SCALE))
        np.testing.assert_array_equal(lr, imresize(mod_crop(image, SCALE), scale=1 / SCALE))
        assert sorted(p.name.split("x4.")[-1] for p in cache.rglob("*.npy")) == ["hr.npy", "lr.npy"]
        assert not list(cache.rglob("*.tmp")) and not list(cache.rglob("*.png"))

        forbid(monkeypatch, "read_rgb", "imresize")
        second = dataset(hr_root, cache, decoded_cache=True)
        lr2, hr2 = second.load_pair(0)
        assert isinstance(hr2, np.memmap) and isinstance(lr2, np.memmap)  # rows read on demand
        np.testing.assert_array_equal(hr2, hr)
        np.testing.assert_array_equal(lr2, lr)
        monkeypatch.undo()
        for seed in range(4):  # the same patches, flips included
            expected, served = plain[(0, seed)], second[(0, seed)]
            assert all(torch.equal(expected[k], served[k]) for k in ("lq", "gt"))

    def test_lr_folder_files_cached_per_lr_folder(self, tmp_path, photo, monkeypatch):
        hr = photo[:48, :48]
        write_png(tmp_path / "hr" / "0001.png", hr)
        lrs = {}
        for name, lr in (("one", photo[:12, :12]), ("two", photo[-12:, -12:])):
            write_png(tmp_path / name / "0001x4.png", lr)
            lrs[name] = lr
        cache = tmp_path / "cache"
        for name, lr in lrs.items():
            ds = dataset(tmp_path / "hr", cache, lr_root=tmp_path / name, decoded_cache=True)
            np.testing.assert_array_equal(ds.load_pair(0)[0], lr)
        forbid(monkeypatch, "read_rgb")
        for name, lr in lrs.items():  # both served from their own entries
            ds = dataset(tmp_path / "hr", cache, lr_root=tmp_path / name, decoded_cache=True)
            np.testing.assert_array_equal(ds.load_pair(0)[0], lr)
            np.testing.assert_array_equal(ds.load_pair(0)[1], hr)

    def test_needs_a_cache_folder(self, tmp_path, photo):
        with pytest.raises(ValueError, match="data.lr_cache_dir"):
            PairedImageDataset(folder(tmp_path, photo), SCALE, PATCH, decoded_cache=True)


class TestInvalidation:
    def test_replaced_source_is_decoded_again(self, tmp_path, photo):
        hr_root, cache = folder(tmp_path, photo[:48, :48]), tmp_path / "cache"
        dataset(hr_root, cache, decoded_cache=True).load_pair(0)
        source = hr_root / "sub" / "photo.png"
        stat = source.stat()
        write_png(source, photo[-48:, -48:])  # same name, same size in pixels, new content
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        lr, hr = dataset(hr_root, cache, decoded_cache=True).load_pair(0)
        np.testing.assert_array_equal(hr, photo[-48:, -48:])
        np.testing.assert_array_equal(lr, imresize(photo[-48:, -48:], scale=1 / SCALE))

    def test_entry_of_another_size_under_the_same_key_is_not_served(self, tmp_path, photo):
        hr_root, cache = folder(tmp_path, photo[:48, :48]), tmp_path / "cache"
        ds = dataset(hr_root, cache, decoded_cache=True)
        # a tool that kept name, byte size and mtime: only the pixel size tells them apart
        write_decoded(ds.decoded_cache_path(0), photo[:40, :48])
        np.testing.assert_array_equal(ds.load_pair(0)[1], photo[:48, :48])


def crafted_files(marker: Path) -> dict[str, bytes | np.ndarray]:
    good = np.zeros((48, 48, 3), np.uint8)
    return {
        "truncated": good,  # written whole, then cut in half
        "float32": good.astype(np.float32),
        "gray": good[..., 0],
        "objects": np.array([Payload(marker)] * 3, dtype=object),
        "not npy": b"\x89PNG\r\n\x1a\n not an array",
        "empty": b"",
    }


@pytest.mark.parametrize("kind", list(crafted_files(Path("unused"))))
def test_crafted_or_half_written_entry_is_never_served(tmp_path, photo, kind):
    marker = tmp_path / "unpickled"
    hr_root, cache = folder(tmp_path, photo[:48, :48]), tmp_path / "cache"
    path = dataset(hr_root, cache, decoded_cache=True).decoded_cache_path(0)
    path.parent.mkdir(parents=True)
    content = crafted_files(marker)[kind]
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content, allow_pickle=True)
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert read_decoded(path, (48, 48, 3)) is None
    lr, hr = dataset(hr_root, cache, decoded_cache=True).load_pair(0)
    np.testing.assert_array_equal(hr, photo[:48, :48])
    assert not marker.exists()
    # rewritten in place: the next run is served the right image
    np.testing.assert_array_equal(read_decoded(path, (48, 48, 3)), photo[:48, :48])
