"""CSD through the real CLI: two smoke steps, and its batch-size and weights-file errors."""

import json

import torch

from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.training import train

# 2 negatives: a cheaper step than the default 10 (which the smoke batch of 10 also fits)
TWO_NEGATIVES = "loss.terms.cont.loss.num_negatives=2"


def test_csd_trains_two_steps_without_saving_the_vgg(tmp_path):
    proc = train(tmp_path, "loss=csd", TWO_NEGATIVES, "trainer.max_steps=2")
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 2
    header = next((tmp_path / "csv").rglob("metrics.csv")).read_text().splitlines()[0]
    assert "train/loss/cont" in header and "train/loss/cont/d_neg" in header
    assert "vgg19_random" in proc.stdout + proc.stderr  # the run says which embedding it used
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert not [k for k in ckpt["state_dict"] if k.startswith("loss.")]


def test_batch_smaller_than_the_negatives_is_one_line(tmp_path):
    args = ("experiment=smoke", "loss=csd", "batch_size=2", f"hydra.run.dir={tmp_path}")
    proc = run_script("train.py", *args)
    assert_one_line_error(proc, "batch_size=2", "at least 10")


def test_missing_vgg19_file_is_one_line(tmp_path):
    missing = tmp_path / "vgg19.pth"
    proc = run_script(
        "train.py",
        "experiment=smoke",
        "loss=csd",
        TWO_NEGATIVES,
        "loss.terms.cont.loss.embedding=vgg19_file",
        f"loss.terms.cont.loss.vgg19_path={missing}",
        f"hydra.run.dir={tmp_path}",
    )
    assert_one_line_error(proc, f"loss.terms.cont.loss.vgg19_path={missing}", "does not exist")
