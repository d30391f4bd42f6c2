"""train.py with teacher.cache=true: built once, reused, never for losses that read features;
the callback's build on a folder left by a killed build, another teacher or a crafted manifest."""

import json
import shutil

import pytest
import torch

from srdistill.data import teacher_cache as tc
from srdistill.data import teacher_cache_key
from srdistill.data.paired import PairedImageDataset
from srdistill.training.teacher_cache_callback import TeacherOutputCache
from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.images import write_png
from tests.helpers.training import train, train_process
from tests.unit.data.test_paired import noise
from tests.unit.data.test_teacher_cache import TinyTeacher


def logs(proc) -> str:
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_cache_is_built_once_then_reused(tmp_path):
    cache = tmp_path / "cache"
    options = ("loss=kd", "teacher.cache=true", f"teacher.cache_builder.dir={cache}")
    first = train(tmp_path / "first", *options)
    assert "teacher-output cache: built 5 images" in logs(first)
    folders = [p for p in cache.iterdir() if p.is_dir()]
    assert len(folders) == 1 and len(list(folders[0].glob("*.npy"))) == 5
    second = train(tmp_path / "second", *options)
    assert "teacher-output cache: 5 images from" in logs(second)
    assert "built" not in logs(second).split("teacher-output cache:")[1][:20]
    results = json.loads((tmp_path / "second" / "results.json").read_text())
    assert results["steps"] == 4
    # another scale is another cache, never the x2 one
    train(tmp_path / "third", *options, "scale=3")
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2


@pytest.mark.slow
def test_a_loss_reading_teacher_features_runs_the_teacher_online(tmp_path):
    cache = tmp_path / "cache"
    proc = train(
        tmp_path / "run", "loss=fakd", "teacher.cache=true", f"teacher.cache_builder.dir={cache}"
    )
    assert "reads the teacher's features" in logs(proc) and "runs online" in logs(proc)
    assert not cache.exists()


def test_a_bad_cache_option_is_a_one_line_error(tmp_path):
    proc = run_script(
        "train.py",
        "experiment=smoke",
        f"hydra.run.dir={tmp_path}",
        "teacher.cache=true",
        "teacher.cache_builder.dtype=bfloat16",
    )
    assert_one_line_error(proc, "teacher.cache_builder.dtype must be one of")


@pytest.mark.slow
def test_two_ddp_ranks_build_one_cache_between_them(tmp_path):
    cache = tmp_path / "cache"
    proc = train_process(
        tmp_path / "run",
        "loss=kd",
        "trainer=ddp_cpu",
        "trainer.devices=2",
        "teacher.cache=true",
        f"teacher.cache_builder.dir={cache}",
    )
    assert "teacher-output cache: built 5 images" in logs(proc)
    assert "3/3 [" in logs(proc)  # rank 0's progress bar: its share, images 0, 2 and 4
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["shapes"]) == 5 and len(list(folder.glob("*.npy"))) == 5
    assert not list(folder.glob("*.tmp"))


class _Strategy:
    def __init__(self) -> None:
        self.barriers: list[str] = []

    def barrier(self, name: str) -> None:
        self.barriers.append(name)


class _Trainer:
    """The little of a one-process Trainer the cache callback reads."""

    global_rank, world_size, is_global_zero = 0, 1, True

    def __init__(self) -> None:
        self.strategy = _Strategy()


class _Module:
    device = torch.device("cpu")

    def __init__(self, teacher) -> None:
        self.teacher, self.calls = teacher, 0

    def teacher_forward(self, lq):
        self.calls += 1
        return (self.teacher(lq).detach(),)


def _callback_setup(tmp_path, seed: int = 0):
    """Three tiny training images, a random x2 teacher (``seed``), the callback and the key."""
    root = tmp_path / "HR"
    for i, shape in enumerate([(40, 48), (40, 48), (36, 30)]):
        if not (root / f"{i:04d}.png").exists():
            write_png(root / f"{i:04d}.png", noise((*shape, 3), seed=i))
    part, module = PairedImageDataset(root, 2, 8), _Module(TinyTeacher(seed))
    callback = TeacherOutputCache(str(tmp_path / "cache"), "float32", None, 0, 2)
    identity = {"weights_sha256": teacher_cache_key.weights_sha256(module.teacher)}
    key = teacher_cache_key.cache_key(part, identity, part.scale, "float32", callback.compute)
    return callback, part, module, key


def test_the_callback_clears_a_killed_builds_leftovers_before_any_rank_builds(tmp_path):
    callback, part, module, key = _callback_setup(tmp_path)
    directory = teacher_cache_key.cache_dir(callback.root, key)
    directory.mkdir(parents=True)
    leftover = directory / ".000000.npy.0123456789ab.tmp"
    leftover.write_bytes(b"half an entry")
    trainer = _Trainer()
    outputs = callback._outputs(trainer, module, part, key)
    assert len(outputs) == 3 and not leftover.exists()
    assert trainer.strategy.barriers[0] == "teacher_cache_prepared"


def test_the_callback_recomputes_a_cache_whose_manifest_claims_another_teacher(tmp_path):
    callback, part, module, key = _callback_setup(tmp_path)
    callback._outputs(_Trainer(), module, part, key)
    _, _, other, other_key = _callback_setup(tmp_path, seed=1)
    shutil.copytree(
        teacher_cache_key.cache_dir(callback.root, key),
        teacher_cache_key.cache_dir(callback.root, other_key),
    )
    callback._outputs(_Trainer(), other, part, other_key)
    assert other.calls > 0  # computed by the other teacher, not sealed again


def test_a_crafted_manifest_stops_the_callback_with_one_line_naming_it(tmp_path):
    callback, part, module, key = _callback_setup(tmp_path)
    callback._outputs(_Trainer(), module, part, key)
    manifest = teacher_cache_key.cache_dir(callback.root, key) / tc.MANIFEST
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(dict(data, shapes=[[8, 8, 3]] * 3)))
    with pytest.raises(ValueError) as err:
        callback._outputs(_Trainer(), module, part, key)
    assert "\n" not in str(err.value) and str(manifest) in str(err.value)


def test_a_cache_dir_below_a_regular_file_is_a_one_line_error_naming_the_option(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    proc = run_script(
        "train.py",
        "experiment=smoke",
        f"hydra.run.dir={tmp_path / 'run'}",
        "teacher.cache=true",
        f"teacher.cache_builder.dir={tmp_path / 'file' / 't'}",
    )
    assert_one_line_error(proc, "teacher.cache_builder.dir: cannot write to folder")
