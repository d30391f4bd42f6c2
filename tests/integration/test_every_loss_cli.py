"""Every ``conf/loss/*.yaml`` trains 2 steps of ``experiment=smoke`` through the real CLI, logs
each of its terms and tags its results."""

import json

import pytest

from tests.helpers.configs import CONF_DIR, compose_config
from tests.helpers.training import train

LOSSES = sorted(p.stem for p in (CONF_DIR / "loss").glob("*.yaml"))
# cheaper steps than the smoke batch of 10 (every loss also runs without them:
# tests/integration/test_smoke_every_loss.py)
EXTRA = {
    "rkd": ["batch_size=3"],  # angles need three images
    "csd": ["loss.terms.cont.loss.num_negatives=2"],  # K negatives from the batch
}
# a variant that records the paper row it reproduces as its method
METHOD = {"dukd_released": "dukd"}
# the DSCLoRA losses read SPAN's block taps: randomly initialised SPAN ch28 / ch26 there
SPAN_PAIR = ["backbone=span", "teacher.require_ckpt=false"]


def _overrides(loss: str) -> list[str]:
    return EXTRA.get(loss, []) + (SPAN_PAIR if loss.startswith("dsclora") else [])


@pytest.mark.slow  # ~10 s per loss; the unit tests cover each loss's maths in the fast suite
@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_config_trains_two_smoke_steps(tmp_path, loss):
    overrides = [f"loss={loss}", "trainer.max_steps=2", "final_table=false"]
    train(tmp_path, *overrides, *_overrides(loss))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["steps"] == 2
    assert results["tags"]["method"] == METHOD.get(loss, loss) and results["tags"]["seed"] == 0
    header = next((tmp_path / "csv").rglob("metrics.csv")).read_text().splitlines()[0]
    terms = compose_config("train", [f"loss={loss}"]).loss.terms
    for name, term in terms.items():
        if float(term.weight) != 0.0:
            assert f"train/loss/{name}" in header, name
