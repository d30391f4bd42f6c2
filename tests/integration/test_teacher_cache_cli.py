"""train.py with teacher.cache=true: built once, reused, never for losses that read features."""

import json

import pytest

from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.training import train, train_process


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
