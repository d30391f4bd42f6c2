"""The teacher-output cache: aligned crops, invalidation, interrupted builds, crafted files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from srdistill.data import teacher_cache as tc
from srdistill.data.images import to_tensor, to_uint8_image
from srdistill.data.paired import PairedImageDataset
from tests.helpers.images import write_png
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
    key = key or tc.cache_key(ds, {"weights_sha256": tc.weights_sha256(teacher)}, SCALE, dtype, {})
    directory = tc.cache_dir(root, key)
    tc.build_entries(ds, forward_of(teacher), directory, dtype, range(len(ds.hr_files)), 2)
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
    key = tc.cache_key(
        ds, {"weights_sha256": tc.weights_sha256(teacher)}, scale, dtype, compute or {}
    )
    return tc.cache_dir("root", key)


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
    assert tc.TeacherOutputs.open(directory, key) is not None
    other = dict(key, scale=3)
    assert tc.TeacherOutputs.open(directory, other) is None


class Killed(RuntimeError):
    pass


def test_a_killed_build_is_never_served_and_is_completed_on_the_next_start(hr_root, tmp_path):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    key = tc.cache_key(ds, {"weights_sha256": "w"}, SCALE, "float32", {})
    directory = tc.cache_dir(tmp_path / "cache", key)
    calls = []

    def dies_on_second_batch(lq):
        calls.append(len(lq))
        if len(calls) == 2:
            raise Killed
        return forward_of(teacher)(lq)

    with pytest.raises(Killed):
        tc.build_entries(ds, dies_on_second_batch, directory, "float32", range(3), 2)
    assert tc.TeacherOutputs.open(directory, key) is None  # no manifest: not a cache
    assert not list(directory.glob("*.tmp"))
    with pytest.raises(RuntimeError, match="entries missing"):
        tc.finish(ds, directory, key)
    # a damaged entry (as if cut short) is recomputed, not reused
    done = sorted(directory.glob("*.npy"))
    assert len(done) == 2
    done[0].write_bytes(done[0].read_bytes()[:100])
    assert tc.missing_entries(ds, directory, "float32", range(3)) == [0, 2]
    computed = tc.build_entries(ds, forward_of(teacher), directory, "float32", range(3), 2)
    assert computed == 2
    outputs = tc.finish(ds, directory, key)
    np.testing.assert_array_equal(outputs.crop(0, 0, 0, 80, 96), full_output(ds, teacher, 0))


def test_ranks_building_their_shares_make_one_cache(hr_root, tmp_path):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    key = tc.cache_key(ds, {"weights_sha256": "w"}, SCALE, "float32", {})
    directory = tc.cache_dir(tmp_path / "cache", key)
    counts = [
        tc.build_entries(ds, forward_of(teacher), directory, "float32", range(rank, 3, 2), 4)
        for rank in (0, 1)
    ]
    assert counts == [2, 1]
    assert len(tc.finish(ds, directory, key)) == 3


@pytest.mark.parametrize(
    "manifest",
    [
        "not json",
        json.dumps([1, 2]),
        json.dumps({"key": "x", "shapes": []}),
        "KEY_WITH_BAD_SHAPES",
    ],
)
def test_a_crafted_or_broken_manifest_is_not_trusted(hr_root, tmp_path, manifest):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    _, key, directory = build(ds, teacher, tmp_path / "cache")
    if manifest == "KEY_WITH_BAD_SHAPES":
        manifest = json.dumps({"key": key, "shapes": [["80", 96, 3]] * 3})
    (directory / tc.MANIFEST).write_text(manifest)
    assert tc.TeacherOutputs.open(directory, key) is None


def test_a_damaged_entry_of_a_finished_cache_is_a_one_line_error(hr_root, tmp_path):
    teacher, ds = TinyTeacher(), dataset(hr_root)
    outputs, _, directory = build(ds, teacher, tmp_path / "cache")
    tc.entry_path(directory, 1).write_bytes(b"\x93NUMPY garbage")
    ds.attach_teacher_outputs(outputs)
    with pytest.raises(ValueError, match="000001.npy is missing or damaged; delete"):
        ds[(1, 0)]


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
        tc.check_cache_options(*options)
