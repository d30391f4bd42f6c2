"""``python train.py experiment=smoke loss=X`` runs every ``conf/loss/*.yaml`` as it is: the smoke
batch and patch are at least what each loss needs, and the batch is 3 unless CSD's negatives need
more (the smoke runs of the tests stay seconds long)."""

import json

import pytest

from srdistill.cli.builders import build_loss
from srdistill.cli.preflight import check_batch_fits_loss
from tests.helpers.configs import CONF_DIR, compose_config
from tests.helpers.training import train

LOSSES = sorted(p.stem for p in (CONF_DIR / "loss").glob("*.yaml"))
# DSCLoRA is a SPAN method: its terms tap SPAN's blocks by name, which the tiny EDSR pair lacks
SPAN_PAIR = ["backbone=span", "teacher.require_ckpt=false"]


def _pair(loss: str) -> list[str]:
    return SPAN_PAIR if loss.startswith("dsclora") else []


@pytest.mark.parametrize("loss", LOSSES)
def test_the_smoke_batch_and_patch_fit_the_loss(loss):
    cfg = compose_config("train", ["experiment=smoke", f"loss={loss}", *_pair(loss)])
    check_batch_fits_loss(cfg, [cfg], build_loss(cfg.loss))  # the check a run starts with


@pytest.mark.parametrize(
    ("loss", "batch", "needed"), [("csd", 10, 10), ("rkd", 3, 3), ("mcad", 3, 2), ("kd", 3, 1)]
)
def test_the_smoke_batch_is_what_csd_needs_and_three_otherwise(loss, batch, needed):
    # CSD's negatives are LR images of the batch; RKD's angles need 3 images, the largest need
    # of the others: any more would only slow the smoke runs of the tests
    cfg = compose_config("train", ["experiment=smoke", f"loss={loss}"])
    assert cfg.batch_size == batch
    assert build_loss(cfg.loss).min_batch_size == needed


@pytest.mark.slow  # every loss config trains one step in this process (~60 s on 2 cores)
@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_trains_a_smoke_step_as_it_is(tmp_path, loss):
    options = ["trainer.max_steps=1", "+trainer.limit_val_batches=0", "final_table=false"]
    train(tmp_path, f"loss={loss}", *options, *_pair(loss))
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 1
