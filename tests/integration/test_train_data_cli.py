"""train.py on a folder holding broken images: stopped before any step, or trained without them."""

import json

import numpy as np
import pytest

from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.images import write_png
from tests.unit.data.test_validation import write_bad_folder


def test_bad_training_images_are_one_line_naming_them(tmp_path):
    data = tmp_path / "data"
    bad = write_bad_folder(data)  # 32x32 good photos are too small for smoke's 24-pixel LR patch
    proc = run_script(
        "train.py",
        "experiment=smoke",
        "data=folder",
        f"data.root={data}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert_one_line_error(proc, *(str(p) for p in bad), "5 unusable", "data.on_bad_image=skip")
    # the folder is created (and proved writable) up front; nothing was trained into it
    assert not list((tmp_path / "run" / "checkpoints").glob("*.ckpt"))


@pytest.mark.slow
def test_skip_mode_trains_on_the_good_images(tmp_path):
    data = tmp_path / "data"
    bad = write_bad_folder(data)
    rng = np.random.default_rng(0)
    for name in ("big1.png", "big2.png"):
        write_png(data / name, rng.integers(0, 256, (64, 72, 3), dtype=np.uint8))
    proc = run_script(
        "train.py",
        "experiment=smoke",
        "data=folder",
        f"data.root={data}",
        "data.on_bad_image=skip",
        "final_table=false",
        "batch_size=2",  # the two good images make one batch
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(str(p) in proc.stderr for p in bad)
    assert json.loads((tmp_path / "run" / "results.json").read_text())["steps"] == 4
