"""The teacher-output cache: aligned crops, invalidation, interrupted builds, crafted files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from torch import nn

from srdistill.data import teacher_cache as tc
from srdistill.data import teacher_cache_key
from srdistill.data.images import to_tensor, to_uint8_image
from srdistill.data.paired import PairedImageDataset
from tests.helpers.images import write_png
from tests.unit.data.test_decoded_cache import fails_instead_of_hanging
from tests.unit.data.test_paired import dihedral_variants, noise

SCALE, PATCH = 2, 8


class TinyTeacher(nn.Module):
    """A random x2 network with a receptive field (two 3x3 convs), so a crop's output differs
    from the crop of the full output near the crop's border."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3 * SCALE**2, 3, padding=1)
        )
        self.up = nn.PixelShuffle(SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.body(x))


@pytest.fixture
def hr_root(tmp_path):
    root = tmp_path / "HR"
    for i, shape in enumerate([(40, 48), (40, 48), (36, 30)]):  # two of one size: one batch
        write_png(root / f"{i:04d}.png", noise((*shape, 3), seed=i))
    return root


def dataset(root, **kwargs) -> PairedImageDataset:
    return PairedImageDataset(root, SCALE, PATCH, **kwargs)


def forward_of(teacher: nn.Module):
    return lambda lq: teacher(lq).detach()


def build(ds, teacher, root, dtype="float32", key=None):
    key = key or teacher_cache_key.cache_key(
        ds, {"weights_sha256": teacher_cache_key.weights_sha256(teacher)}, SCALE, dtype, {}
    )
    directory = teacher_cache_key.cache_dir(root, key)
    tc.prepare(directory, key)
    tc.build_entries(ds, forward_of(teacher), directory, key, range(len(ds.hr_files)), 2)
    return tc.finish(ds, directory, key), key, directory


def full_output(ds, teacher, index) -> np.ndarray:
    lr = to_tensor(ds.load_pair(index)[0])[None]
    return teacher(lr)[0].detach().permute(1, 2, 0).numpy()


def locate(lr_full: np.ndarray, lq: np.ndarray) -> tuple[int, int, int]:
    """(top, left, variant) of the patch ``lq`` in ``lr_full``, found by search."""
    found = [
        (top, left, v)
        for top in range(lr_full.shape[0] - PATCH + 1)
        for left in range(lr_full.shape[1] - PATCH + 1)
        for v, variant in enumerate(
            dihedral_variants(lr_full[top : top + PATCH, left : left + PATCH])
        )
        if np.array_equal(variant, lq)
    ]
    assert len(found) == 1, found
    return found[0]


def test_served_crop_is_the_full_image_output_cropped_and_flipped_alike(hr_root, tmp_path):
    teacher = TinyTeacher()
    ds = dataset(hr_root, augment=True)
    ds.attach_teacher_outputs(build(ds, teacher, tmp_path / "cache")[0])
    s = SCALE
    for index, seed in [(0, 1), (1, 2), (2, 3), (0, 4), (2, 5), (1, 6)]:
        item = ds[(index, seed)]
        lr_full = ds.load_pair(index)[0]
        top, left, variant = locate(lr_full, to_uint8_image(item["lq"]))
        full = full_output(ds, teacher, index)
        window = full[top * s : (top + PATCH) * s, left * s : (left + PATCH) * s]
        expected = dihedral_variants(window)[variant]
        served = item["sr_t"].permute(1, 2, 0).numpy()
        # equal up to float rounding (the cache ran images in batches of two)
        np.testing.assert_allclose(served, expected, rtol=0, atol=1e-6)
        assert item["sr_t"].dtype == torch.float32 and item["sr_t"].shape == item["gt"].shape


def test_the_crop_of_the_full_output_differs_from_the_output_of_the_crop_only_near_its_border(
    hr_root, tmp_path
):
    """The subtlety the cache changes: with a receptive field of 2 LR pixels, the teacher's
    output on a crop matches the crop of its full-image output except in a 2-pixel LR frame."""
    teacher = TinyTeacher()
    ds = dataset(hr_root, augment=False)
    ds.attach_teacher_outputs(build(ds, teacher, tmp_path / "cache")[0])
    item = ds[(0, 7)]
    online = teacher(item["lq"][None])[0].detach()
    frame = 2 * SCALE
    inner = (slice(None), slice(frame, -frame), slice(frame, -frame))
    torch.testing.assert_close(online[inner], item["sr_t"][inner])
    assert (online - item["sr_t"]).abs().max() > 1e-3


@pytest.mark.parametrize(("dtype", "tolerance"), [("float16", 1e-3), ("uint8", 0.5 / 255 + 1e-6)])
def test_compact_dtypes_stay_within_their_rounding(hr_root, tmp_path, dtype, tolerance):
    teacher = TinyTeacher()
    ds = dataset(hr_root, augment=False)
    outputs = build(ds, teacher, tmp_path / "cache", dtype)[0]
    full = torch.from_numpy(full_output(ds, teacher, 2))
    stored = tc.stored_to_tensor(outputs.crop(2, 0, 0, *outputs.shapes[2][:2])).permute(1, 2, 0)
    reference = full.clamp(0, 1) if dtype == "uint8" else full
    assert (stored - reference).abs().max() <= tolerance


def digest(ds, teacher, scale=SCALE, dtype="float32", compute=None):
    key = teacher_cache_key.cache_key(
        ds,
        {"weights_sha256": teacher_cache_key.weights_sha256(teacher)},
        scale,
        dtype,
        compute or {},
    )
    return teacher_cache_key.cache_dir("root", key)


def test_teacher_scale_data_dtype_or_tiling_change_the_cache_folder(hr_root):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    base = digest(ds, teacher)
    assert digest(ds, teacher) == base  # deterministic
    assert digest(ds, TinyTeacher(seed=1)) != base
    assert digest(ds, teacher, scale=3) != base
    assert digest(ds, teacher, dtype="float16") != base
    assert digest(ds, teacher, compute={"tile": 64}) != base
    write_png(hr_root / "0003.png", noise((20, 20, 3), seed=9))  # a file added
    assert digest(dataset(hr_root), teacher) != base
    os.remove(hr_root / "0003.png")
    assert digest(dataset(hr_root), teacher) == base
    write_png(hr_root / "0002.png", noise((36, 32, 3), seed=2))  # a file replaced
    assert digest(dataset(hr_root), teacher) != base


def test_a_cache_made_for_another_key_is_not_opened(hr_root, tmp_path):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    _, key, directory = build(ds, teacher, tmp_path / "cache")
    assert tc.TeacherOutputs.open(directory, key, ds) is not None
    other = dict(key, scale=3)
    assert tc.TeacherOutputs.open(directory, other, ds) is None


class Killed(RuntimeError):
    pass


def test_a_killed_build_is_never_served_and_is_completed_on_the_next_start(hr_root, tmp_path):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    key = teacher_cache_key.cache_key(ds, {"weights_sha256": "w"}, SCALE, "float32", {})
    directory = teacher_cache_key.cache_dir(tmp_path / "cache", key)
    calls = []

    def dies_on_second_batch(lq):
        calls.append(len(lq))
        if len(calls) == 2:
            raise Killed
        return forward_of(teacher)(lq)

    with pytest.raises(Killed):
        tc.build_entries(ds, dies_on_second_batch, directory, key, range(3), 2)
    assert tc.TeacherOutputs.open(directory, key, ds) is None  # no manifest: not a cache
    assert not list(directory.glob("*.tmp"))
    with pytest.raises(RuntimeError, match="entries missing"):
        tc.finish(ds, directory, key)
    # a damaged entry (as if cut short) is recomputed, not reused
    done = sorted(directory.glob("*.npy"))
    assert len(done) == 2
    done[0].write_bytes(done[0].read_bytes()[:100])
    assert tc.missing_entries(ds, directory, key, range(3)) == [0, 2]
    computed = tc.build_entries(ds, forward_of(teacher), directory, key, range(3), 2)
    assert computed == 2
    outputs = tc.finish(ds, directory, key)
    np.testing.assert_array_equal(outputs.crop(0, 0, 0, 80, 96), full_output(ds, teacher, 0))


def test_ranks_building_their_shares_make_one_cache(hr_root, tmp_path):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    key = teacher_cache_key.cache_key(ds, {"weights_sha256": "w"}, SCALE, "float32", {})
    directory = teacher_cache_key.cache_dir(tmp_path / "cache", key)
    counts = [
        tc.build_entries(ds, forward_of(teacher), directory, key, range(rank, 3, 2), 4)
        for rank in (0, 1)
    ]
    assert counts == [2, 1]
    assert len(tc.finish(ds, directory, key)) == 3


@pytest.mark.parametrize(
    "manifest",
    ["not json", json.dumps([1, 2]), json.dumps({"key": "x", "shapes": []})],
)
def test_a_broken_manifest_or_one_of_another_key_is_not_trusted(hr_root, tmp_path, manifest):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    _, key, directory = build(ds, teacher, tmp_path / "cache")
    (directory / tc.MANIFEST).write_text(manifest)
    assert tc.TeacherOutputs.open(directory, key, ds) is None


@pytest.mark.parametrize(
    "shapes",
    [
        [["80", 96, 3]] * 3,
        [[80.0, 96, 3], [80, 96, 3], [72, 60, 3]],
        [[8, 8, 3]] * 3,  # entries of this shape crafted too: sr_t would not match gt
        [[80, 96, 3], [80, 96, 3], [72, 60, 0]],
        [[-80, 96, 3], [80, 96, 3], [72, 60, 3]],
        [[10**30, 96, 3], [80, 96, 3], [72, 60, 3]],
        [[80, 96, 3]] * 2,
        {"0": [80, 96, 3]},
    ],
)
def test_crafted_manifest_shapes_are_a_one_line_error_naming_the_manifest(
    hr_root, tmp_path, shapes
):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    _, key, directory = build(ds, teacher, tmp_path / "cache")
    manifest = json.loads((directory / tc.MANIFEST).read_text())
    (directory / tc.MANIFEST).write_text(json.dumps(dict(manifest, shapes=shapes)))
    if shapes == [[8, 8, 3]] * 3:
        for index in range(3):
            np.save(tc.entry_path(directory, index), np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError) as err:
        ds.attach_teacher_outputs(tc.TeacherOutputs.open(directory, key, ds))
        ds[(0, 1)]
    message = str(err.value)
    assert "\n" not in message and str(directory / tc.MANIFEST) in message
    assert "'shapes'" in message and f"delete {directory}" in message


def test_a_damaged_entry_of_a_finished_cache_is_a_one_line_error(hr_root, tmp_path):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    outputs, _, directory = build(ds, teacher, tmp_path / "cache")
    tc.entry_path(directory, 1).write_bytes(b"\x93NUMPY garbage")
    ds.attach_teacher_outputs(outputs)
    with pytest.raises(ValueError, match="000001.npy is too short .*; delete"):
        ds[(1, 0)]


@pytest.mark.parametrize("how", ["copied", "linked"])
def test_an_entry_replaced_by_another_images_entry_is_refused(hr_root, tmp_path, how):
    """Images 0 and 1 have the same size: only the entry's recorded identity and checksum tell
    their outputs apart."""
    teacher, ds = TinyTeacher(), dataset(hr_root)
    outputs, key, directory = build(ds, teacher, tmp_path / "cache")
    entry, other = tc.entry_path(directory, 0), tc.entry_path(directory, 1)
    entry.unlink()
    if how == "copied":
        shutil.copyfile(other, entry)
    else:
        entry.symlink_to(other)
    ds.attach_teacher_outputs(outputs)
    with pytest.raises(ValueError, match="000000.npy .*; delete"):
        ds[(0, 1)]
    if how == "linked":  # refused when the cache is opened, before training
        with pytest.raises(ValueError, match="000000.npy is missing, a symbolic link"):
            tc.TeacherOutputs.open(directory, key, ds)


def test_an_edited_entry_is_refused(hr_root, tmp_path):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    outputs, _, directory = build(ds, teacher, tmp_path / "cache")
    entry = tc.entry_path(directory, 2)
    data = bytearray(entry.read_bytes())
    data[300] ^= 0x40  # inside the array: shape and trailer intact
    entry.write_bytes(bytes(data))
    ds.attach_teacher_outputs(outputs)
    with pytest.raises(ValueError, match="000002.npy does not match its checksum"):
        ds[(2, 0)]


def test_an_entry_linked_to_a_fifo_is_refused_without_blocking(hr_root, tmp_path):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    outputs, key, directory = build(ds, teacher, tmp_path / "cache")
    os.mkfifo(tmp_path / "fifo")
    tc.entry_path(directory, 0).unlink()
    tc.entry_path(directory, 0).symlink_to(tmp_path / "fifo")
    with fails_instead_of_hanging():
        with pytest.raises(ValueError, match="000000.npy .*not a regular file"):
            outputs.crop(0, 0, 0, 4, 4)
        with pytest.raises(ValueError, match="000000.npy .*not a regular file"):
            tc.TeacherOutputs.open(directory, key, ds)
        assert tc.missing_entries(ds, directory, key, range(3)) == [0]  # a build redoes it


def test_a_replaced_image_with_the_old_mtime_changes_the_cache_folder(hr_root, tmp_path):
    """``touch -r``: same name, pixel size and mtime; the key follows the bytes."""
    teacher = TinyTeacher()
    before = digest(dataset(hr_root), teacher)
    source, reference = hr_root / "0001.png", tmp_path / "reference"
    reference.touch()
    subprocess.run(["touch", "-r", str(source), str(reference)], check=True)
    write_png(source, noise((40, 48, 3), seed=42))
    subprocess.run(["touch", "-r", str(reference), str(source)], check=True)
    assert digest(dataset(hr_root), teacher) != before


def test_a_manifest_claiming_another_teacher_is_rebuilt_never_resealed(hr_root, tmp_path):
    """A finished cache of teacher A copied to the folder of teacher B's key: B's build must
    recompute every output, not seal A's outputs under B's name."""
    ds = dataset(hr_root)
    _, key_a, folder_a = build(ds, TinyTeacher(seed=0), tmp_path / "cache")
    teacher_b = TinyTeacher(seed=1)
    key_b = teacher_cache_key.cache_key(
        ds, {"weights_sha256": teacher_cache_key.weights_sha256(teacher_b)}, SCALE, "float32", {}
    )
    folder_b = teacher_cache_key.cache_dir(tmp_path / "cache", key_b)
    shutil.copytree(folder_a, folder_b)
    assert tc.TeacherOutputs.open(folder_b, key_b, ds) is None
    tc.prepare(folder_b, key_b)
    computed = tc.build_entries(ds, forward_of(teacher_b), folder_b, key_b, range(3), 2)
    assert computed == 3
    outputs = tc.finish(ds, folder_b, key_b)
    served = outputs.crop(0, 0, 0, 80, 96)
    np.testing.assert_allclose(served, full_output(ds, teacher_b, 0), rtol=0, atol=1e-6)
    # entries of A (only the manifest edited to claim B) are not B's either
    shutil.rmtree(folder_b)
    shutil.copytree(folder_a, folder_b)
    manifest = json.loads((folder_b / tc.MANIFEST).read_text())
    (folder_b / tc.MANIFEST).write_text(json.dumps(dict(manifest, key=key_b)))
    with pytest.raises(ValueError, match="000000.npy was made .*for another cache"):
        tc.TeacherOutputs.open(folder_b, key_b, ds).crop(0, 0, 0, 4, 4)
    assert tc.missing_entries(ds, folder_b, key_b, range(3)) == [0, 1, 2]


def test_a_killed_builds_temporaries_are_removed_when_the_next_build_starts(hr_root, tmp_path):
    ds = dataset(hr_root)
    key = teacher_cache_key.cache_key(ds, {"weights_sha256": "w"}, SCALE, "float32", {})
    directory = teacher_cache_key.cache_dir(tmp_path / "cache", key)
    directory.mkdir(parents=True)
    leftovers = [directory / ".000001.npy.0123456789ab.tmp", directory / ".manifest.json.ab.tmp"]
    for path in leftovers:
        path.write_bytes(b"half an entry")
    tc.prepare(directory, key)
    assert not any(path.exists() for path in leftovers)


def test_a_full_disk_names_the_entry(hr_root, tmp_path, monkeypatch):
    ds = dataset(hr_root)
    key = teacher_cache_key.cache_key(ds, {"weights_sha256": "w"}, SCALE, "float32", {})
    directory = teacher_cache_key.cache_dir(tmp_path / "cache", key)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError) as err:
        tc.build_entries(ds, forward_of(TinyTeacher()), directory, key, range(3), 2)
    assert str(err.value) == (
        f"teacher.cache_builder.dir: cannot write {tc.entry_path(directory, 0)} "
        "(No space left on device)"
    )
    assert not list(directory.glob(".*.tmp"))


def test_a_cache_of_another_size_is_refused(hr_root, tmp_path):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    outputs = build(ds, teacher, tmp_path / "cache")[0]
    write_png(hr_root / "0009.png", noise((20, 20, 3), seed=9))
    with pytest.raises(ValueError, match="holds 3 images"):
        dataset(hr_root).attach_teacher_outputs(outputs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("bfloat16", None, 0, 1), "builder.dtype"),
        (("float16", 0, 0, 1), "builder.tile "),
        (("float16", 64, -1, 1), "builder.tile_overlap"),
        (("float16", 64, 8, 0), "batch_size"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        teacher_cache_key.check_cache_options(*options)


def test_a_manifest_replaced_by_a_folder_is_named_before_any_entry_is_deleted(hr_root, tmp_path):
    _, key, directory = build(dataset(hr_root), TinyTeacher(), tmp_path / "cache")
    manifest = directory / tc.MANIFEST
    manifest.unlink()
    manifest.mkdir()
    entries = sorted(directory.glob(tc.ENTRY_GLOB))
    with pytest.raises(ValueError, match="manifest.json is not a regular file; remove it") as err:
        tc.prepare(directory, key)
    assert "\n" not in str(err.value) and str(manifest) in str(err.value)
    assert sorted(directory.glob(tc.ENTRY_GLOB)) == entries and len(entries) == 3
