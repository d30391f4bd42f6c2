"""The embedded sample set: scikit-image photos written once as PNGs in the benchmark layout."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from srdistill.data import samples
from srdistill.data.benchmark_sets import BenchmarkDataset
from srdistill.data.images import to_uint8_image
from srdistill.data.samples import (
    TRAIN_PHOTOS,
    TRAIN_SET,
    VAL_PHOTOS,
    VAL_SET,
    default_sample_root,
    materialize_samples,
    sample_paired_dataset,
)


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    """Written once for the module: writing the seven photos takes about a second."""
    root = tmp_path_factory.mktemp("samples")
    assert materialize_samples(root) == root
    return root


def test_names_and_split():
    assert len(TRAIN_PHOTOS) == 5 and len(VAL_PHOTOS) == 2
    assert not set(TRAIN_PHOTOS) & set(VAL_PHOTOS)


def test_writes_train_and_val_pngs(sample_root):
    for set_name, names in ((TRAIN_SET, TRAIN_PHOTOS), (VAL_SET, VAL_PHOTOS)):
        folder = sample_root / set_name / "HR"
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.png" for n in names)
        for path in folder.iterdir():
            with Image.open(path) as img:
                assert img.format == "PNG" and img.mode == "RGB"
    assert not list(sample_root.rglob("*.tmp*"))


def test_pixels_are_the_scikit_image_photos(sample_root):
    from skimage import data as skdata

    with Image.open(sample_root / VAL_SET / "HR" / "chelsea.png") as img:
        np.testing.assert_array_equal(np.asarray(img), skdata.chelsea())


def test_second_call_does_not_rewrite(sample_root, monkeypatch):
    files = sorted(sample_root.rglob("*.png"))
    before = {p: p.stat().st_mtime_ns for p in files}

    def fail(name):
        raise AssertionError(f"photo {name} loaded again")

    monkeypatch.setattr(samples, "load_photo", fail)
    assert materialize_samples(sample_root) == sample_root
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_missing_file_is_restored_alone(tmp_path, sample_root, monkeypatch):
    root = tmp_path / "copy"
    for path in sample_root.rglob("*.png"):
        target = root / path.relative_to(sample_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (root / VAL_SET / "HR" / "coffee.png").unlink()
    loaded = []
    real = samples.load_photo

    def spy(name):
        loaded.append(name)
        return real(name)

    monkeypatch.setattr(samples, "load_photo", spy)
    materialize_samples(root)
    assert loaded == ["coffee"]
    assert (root / VAL_SET / "HR" / "coffee.png").is_file()


def test_concurrent_writer_does_not_break_the_other(tmp_path, monkeypatch):
    """Another process (say a second DDP rank) writes the same photos while this one does.

    Simulated deterministically: right after this process has saved its first temporary file,
    the "other process" runs materialize_samples to completion, then this one goes on. Neither
    may fail, and a reader listing the folder meanwhile must see only finished PNG files.
    """
    monkeypatch.setattr(samples, "load_photo", lambda name: np.full((4, 6, 3), len(name), "u1"))
    real_save = Image.Image.save
    seen_by_reader = []

    def save(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)
        if not seen_by_reader:
            seen_by_reader.append(sorted(p.name for p in tmp_path.rglob("*.png")))
            materialize_samples(tmp_path)  # the other process, run to completion

    monkeypatch.setattr(Image.Image, "save", save)
    materialize_samples(tmp_path)
    assert seen_by_reader == [[]]  # our half-done temporary file is not a *.png
    for set_name, names in ((TRAIN_SET, TRAIN_PHOTOS), (VAL_SET, VAL_PHOTOS)):
        folder = tmp_path / set_name / "HR"
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.png" for n in names)
        for name in names:
            with Image.open(folder / f"{name}.png") as img:
                assert np.asarray(img)[0, 0, 0] == len(name)


def test_default_root_follows_cache_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SRDISTILL_CACHE", str(tmp_path / "c"))
    assert default_sample_root() == tmp_path / "c" / "samples"


def test_gray_photos_are_replicated_and_others_rejected():
    camera = samples.load_photo("camera")  # scikit-image's grayscale cameraman
    assert camera.shape[2] == 3 and (camera == camera[..., :1]).all()
    with pytest.raises(ValueError, match="logo"):
        samples.load_photo("logo")  # RGBA


def test_the_teacher_set_holds_the_training_photos_and_never_the_validation_ones(tmp_path):
    root = samples.materialize_samples(tmp_path, with_teacher_set=True)
    names = {p.stem for p in (root / samples.TEACHER_SET / "HR").glob("*.png")}
    assert names == set(samples.TRAIN_PHOTOS) | set(samples.TEACHER_EXTRA_PHOTOS)
    assert not names & set(samples.VAL_PHOTOS)


def test_sample_paired_dataset_items(sample_root):
    ds = sample_paired_dataset(scale=4, lr_patch_size=32, root=sample_root)
    assert len(ds) == len(TRAIN_PHOTOS)
    assert ds.hr_root == sample_root / TRAIN_SET / "HR"
    item = ds[0]  # astronaut, 512x512: cheap to downscale
    assert item["lq"].shape == (3, 32, 32)
    assert item["gt"].shape == (3, 128, 128)
    assert 0.0 <= item["gt"].min() and item["gt"].max() <= 1.0
    lq, gt = to_uint8_image(item["lq"]), to_uint8_image(item["gt"])
    assert gt.std() > 5 and lq.std() > 5  # real photo content, not blank


def test_sample_paired_dataset_passes_options(sample_root):
    ds = sample_paired_dataset(2, 8, root=sample_root, repeat=3, augment=False)
    assert len(ds) == 3 * len(TRAIN_PHOTOS)
    assert ds.augment is False and ds.scale == 2 and ds.patch == 8


def test_val_set_reads_as_benchmark(sample_root):
    ds = BenchmarkDataset(sample_root, VAL_SET, 4)
    assert [ds[i]["name"] for i in range(len(ds))] == sorted(VAL_PHOTOS)
    assert ds[0]["gt"].shape == (3, 300, 448)  # chelsea 300x451, mod-cropped


def test_a_full_disk_names_the_photo_file_and_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(samples, "load_photo", lambda name: np.zeros((4, 6, 3), "u1"))

    def disk_full(self, fp, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(OSError) as err:
        materialize_samples(tmp_path)
    target = tmp_path / TRAIN_SET / "HR" / f"{TRAIN_PHOTOS[0]}.png"
    assert str(err.value) == f"sample photos: cannot write {target} (No space left on device)"
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
