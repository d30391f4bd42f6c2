"""loss=mipkd trains through the real CLI (experiment=smoke, 2 steps) and keeps its mixer in the
checkpoint; a wrong routing option is a one-line error."""

import json

import torch

from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.training import train


def test_mipkd_trains_two_steps_and_checkpoints_its_mixer(tmp_path):
    train(tmp_path, "loss=mipkd", "trainer.max_steps=2")
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 2
    header = next((tmp_path / "csv").rglob("metrics.csv")).read_text().splitlines()[0]
    for column in ("mix", "mix/feat", "mix/ae", "mix/block"):
        assert f"train/loss/{column}," in header + ",", column
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    # tiny pair: two taps, each with E_T, E_S, D, D_S; no teacher weights
    mixer = [k for k in state if k.startswith("loss.terms.mix.")]
    assert {k.split(".")[3] for k in mixer} == {"enc_t", "enc_s", "dec_t", "dec_s"}
    assert len(mixer) == 2 * 4 * 4  # taps x modules x (2 convs x weight, bias)
    assert not any(k.startswith("teacher.") for k in state)


def test_unknown_route_is_one_line(tmp_path):
    proc = run_script(
        "train.py",
        "experiment=smoke",
        "loss=mipkd",
        "loss.terms.mix.loss.force_route=sideways",
        f"hydra.run.dir={tmp_path}",
    )
    assert_one_line_error(proc, "force_route", "sideways")
