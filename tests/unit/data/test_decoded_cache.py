"""The decoded-image cache (``decoded_cache=True``): uint8 .npy entries read memory-mapped.

A cached read must equal a fresh decode, a changed source must never be served from an old entry
(whatever its size and mtime), and a cache file that is not exactly what the cache wrote for that
source (half-written, truncated, another dtype or size, pickled objects, another image's entry,
edited bytes, a link, a FIFO) must be ignored and rewritten, never unpickled or served.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

import srdistill.data.image_cache as image_cache_module
from srdistill import checksums
from srdistill.data.decoded_cache import EntryError, read_decoded, read_entry, write_decoded
from srdistill.data.images import mod_crop
from srdistill.data.matlab_bicubic import imresize
from srdistill.data.paired import PairedImageDataset
from tests.helpers.images import write_png

SCALE, PATCH = 4, 6


def forbid(monkeypatch, *names: str) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("decoded or resized although the cache holds the image")

    for name in names:
        monkeypatch.setattr(image_cache_module, name, fail)


def folder(tmp_path: Path, image: np.ndarray) -> Path:
    write_png(tmp_path / "hr" / "sub" / "photo.png", image)
    return tmp_path / "hr"


def dataset(hr_root: Path, cache: Path, **kwargs) -> PairedImageDataset:
    return PairedImageDataset(hr_root, SCALE, PATCH, lr_cache_dir=cache, **kwargs)


def hr_identity(ds: PairedImageDataset, index: int = 0) -> str:
    """What the decoded HR entry of image ``index`` records it is (its source's digest)."""
    return f"decoded:{ds.source_digest(ds.hr_files[index])}:mod{SCALE}"


@contextmanager
def fails_instead_of_hanging(seconds: float = 5.0):
    """A blocking call (say, opening a FIFO for reading) raises TimeoutError instead of hanging
    the test run: a signal handler that raises ends the interrupted system call."""

    def expire(signum, frame):
        raise TimeoutError("blocked: the call did not return")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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

    @pytest.mark.parametrize("decoded", [True, False])
    def test_replaced_source_with_the_old_mtime_is_decoded_again(self, tmp_path, photo, decoded):
        """``touch -r``: another image of the same pixel size given the old one's mtime; the
        HR and the LR served are the new image's, with or without the decoded cache."""
        hr_root, cache = folder(tmp_path, photo[:48, :48]), tmp_path / "cache"
        source = hr_root / "sub" / "photo.png"
        reference = write_png(tmp_path / "reference.png", photo[:8, :8])
        subprocess.run(["touch", "-r", str(source), str(reference)], check=True)
        dataset(hr_root, cache, decoded_cache=decoded).load_pair(0)
        write_png(source, photo[-48:, -48:])
        subprocess.run(["touch", "-r", str(reference), str(source)], check=True)
        lr, hr = dataset(hr_root, cache, decoded_cache=decoded).load_pair(0)
        np.testing.assert_array_equal(hr, photo[-48:, -48:])
        np.testing.assert_array_equal(lr, imresize(photo[-48:, -48:], scale=1 / SCALE))

    def test_entry_of_another_size_under_the_same_key_is_not_served(self, tmp_path, photo):
        hr_root, cache = folder(tmp_path, photo[:48, :48]), tmp_path / "cache"
        ds = dataset(hr_root, cache, decoded_cache=True)
        write_decoded(ds.decoded_cache_path(0), photo[:40, :48], hr_identity(ds))
        np.testing.assert_array_equal(ds.load_pair(0)[1], photo[:48, :48])

    @pytest.mark.parametrize("how", ["copied", "linked"])
    def test_another_images_entry_put_in_place_is_not_served(self, tmp_path, photo, how):
        write_png(tmp_path / "hr" / "a.png", photo[:48, :48])
        write_png(tmp_path / "hr" / "b.png", photo[-48:, -48:])
        cache = tmp_path / "cache"
        ds = dataset(tmp_path / "hr", cache, decoded_cache=True)
        ds.load_pair(0), ds.load_pair(1)
        entry_a, entry_b = ds.decoded_cache_path(0), ds.decoded_cache_path(1)
        entry_a.unlink()
        if how == "copied":
            shutil.copyfile(entry_b, entry_a)
        else:
            entry_a.symlink_to(entry_b)
        np.testing.assert_array_equal(
            dataset(tmp_path / "hr", cache, decoded_cache=True).load_pair(0)[1], photo[:48, :48]
        )
        assert not entry_a.is_symlink()  # replaced by a good entry; b's entry untouched
        np.testing.assert_array_equal(np.load(entry_b), photo[-48:, -48:])

    def test_an_edited_entry_is_not_served(self, tmp_path, photo):
        hr_root, cache = folder(tmp_path, photo[:48, :48]), tmp_path / "cache"
        ds = dataset(hr_root, cache, decoded_cache=True)
        ds.load_pair(0)
        entry = ds.decoded_cache_path(0)
        data = bytearray(entry.read_bytes())
        data[200] ^= 0xFF  # one pixel byte: header, shape and trailer intact
        entry.write_bytes(bytes(data))
        with pytest.raises(EntryError, match="checksum"):
            read_entry(entry, hr_identity(ds), (48, 48, 3), np.uint8)
        np.testing.assert_array_equal(
            dataset(hr_root, cache, decoded_cache=True).load_pair(0)[1], photo[:48, :48]
        )

    def test_a_fifo_entry_is_replaced_without_blocking(self, tmp_path, photo):
        hr_root, cache = folder(tmp_path, photo[:48, :48]), tmp_path / "cache"
        ds = dataset(hr_root, cache, decoded_cache=True)
        for path in (ds.decoded_cache_path(0), ds.lr_cache_path(0)):
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(tmp_path / f"fifo-{path.name}")
            path.symlink_to(tmp_path / f"fifo-{path.name}")
        os.mkfifo(tmp_path / "direct")
        with fails_instead_of_hanging():
            lr, hr = dataset(hr_root, cache, decoded_cache=True).load_pair(0)
            with pytest.raises(EntryError, match="not a regular file"):
                read_entry(tmp_path / "direct", "x", (1, 1, 3), np.uint8)
        np.testing.assert_array_equal(hr, photo[:48, :48])
        assert ds.decoded_cache_path(0).is_file() and not ds.decoded_cache_path(0).is_symlink()


def test_a_full_disk_names_the_entry(tmp_path, photo, monkeypatch):
    hr_root, cache = folder(tmp_path, photo[:48, :48]), tmp_path / "cache"
    ds = dataset(hr_root, cache, decoded_cache=True)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match=r"cannot write .*photo\.png\..*\.npy \(No space left"):
        ds.load_pair(0)
    assert not list(cache.rglob("*.tmp"))


def test_hashing_reads_each_source_once_per_dataset(tmp_path, photo, monkeypatch):
    """The content digests are computed when the dataset is built, never per patch."""
    hr_root, cache = folder(tmp_path, photo[:48, :48]), tmp_path / "cache"
    calls = []
    real = checksums.file_sha256
    monkeypatch.setattr(image_cache_module, "file_sha256", lambda p: calls.append(p) or real(p))
    ds = dataset(hr_root, cache, decoded_cache=True)
    assert calls == [hr_root / "sub" / "photo.png"]
    for seed in range(3):
        ds[(0, seed)]
    assert len(calls) == 1


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
    ds = dataset(hr_root, cache, decoded_cache=True)
    path = ds.decoded_cache_path(0)
    path.parent.mkdir(parents=True)
    content = crafted_files(marker)[kind]
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content, allow_pickle=True)
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert read_decoded(path, hr_identity(ds), (48, 48, 3)) is None
    lr, hr = dataset(hr_root, cache, decoded_cache=True).load_pair(0)
    np.testing.assert_array_equal(hr, photo[:48, :48])
    assert not marker.exists()
    # rewritten in place: the next run is served the right image
    np.testing.assert_array_equal(read_decoded(path, hr_identity(ds), (48, 48, 3)), photo[:48, :48])


@pytest.mark.parametrize("decoded_cache", [True, False])
def test_a_file_changed_during_the_run_is_refused_never_cached_under_its_old_key(
    tmp_path, photo, decoded_cache
):
    image = photo[:48, :48]
    hr_root, cache = folder(tmp_path, image), tmp_path / "cache"
    path = hr_root / "sub" / "photo.png"
    ds = dataset(hr_root, cache, decoded_cache=decoded_cache)
    write_png(path, 255 - image)  # same size, other pixels, after the digests were taken
    with pytest.raises(ValueError, match="photo.png changed since the dataset was built") as err:
        ds.load_pair(0)
    assert "\n" not in str(err.value) and not list(cache.rglob("*.npy"))
    write_png(path, image)  # the original is back: its entries must hold its own pixels
    lr, hr = dataset(hr_root, cache, decoded_cache=decoded_cache).load_pair(0)
    np.testing.assert_array_equal(hr, image)
    np.testing.assert_array_equal(lr, imresize(image, scale=1 / SCALE))


def test_a_training_file_with_the_longest_legal_name_gets_short_cache_entries(tmp_path, photo):
    hr_root, cache = tmp_path / "hr", tmp_path / "cache"
    write_png(hr_root / ("a" * 240 + ".png"), photo[:48, :48])
    write_png(hr_root / ("é" * 120 + ".png"), photo[:48, :48])  # 2-byte characters
    for _ in range(2):  # written, then served
        ds = dataset(hr_root, cache, decoded_cache=True)
        for index in range(2):
            np.testing.assert_array_equal(ds.load_pair(index)[1], photo[:48, :48])
    names = [p.name for p in cache.rglob("*.npy")]
    assert len(names) == 4 and max(len(n.encode()) for n in names) < 120


def test_entries_of_the_previous_naming_are_left_unused(tmp_path, photo):
    hr_root, cache = folder(tmp_path, photo[:48, :48]), tmp_path / "cache"
    ds = dataset(hr_root, cache, decoded_cache=True)
    digest = ds.source_digest(ds.hr_files[0])
    old = ds.decoded_cache_path(0).parent / f"photo.png.{digest[:32]}x{SCALE}.hr.npy"
    write_decoded(old, np.zeros((48, 48, 3), np.uint8), hr_identity(ds))
    np.testing.assert_array_equal(ds.load_pair(0)[1], photo[:48, :48])
    assert ds.decoded_cache_path(0) != old
