"""train.py module.balance: the balanced weights in results.json and the loggers; bad input."""

import csv
import json

import pytest

from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.training import train


def test_smoke_run_balances_every_term_and_records_it(tmp_path):
    train(tmp_path, "loss=mcad", "module.balance.target=0.5", "module.balance.steps=2")
    results = json.loads((tmp_path / "results.json").read_text())
    record = results["balance"]
    assert record["target"] == {"resp": 0.5, "cont": 0.5, "adv": 0.5}
    assert record["steps"] == 2 and record["configured"]["cont"] == 0.05
    for term, weight in record["weights"].items():
        assert weight == pytest.approx(0.5 / record["measured_ratio_at_weight_1"][term])
    assert results["weights"] == {"rec": 3.0, **record["weights"]}
    with next((tmp_path / "csv").rglob("metrics.csv")).open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/balance/weight/resp")]
    assert [int(r["step"]) for r in rows] == [1]
    assert float(rows[0]["train/balance/weight/cont"]) == pytest.approx(record["weights"]["cont"])


def test_a_resume_must_keep_the_option_of_the_run_it_resumes(tmp_path):
    first = tmp_path / "first"
    train(first, "loss=kd", "module.balance.target=1", "module.balance.steps=2")
    ckpt = first / "checkpoints" / "last.ckpt"
    for overrides, words in (
        (("module.balance.target=null",), ("ckpt_path", "module.balance", "now target=None")),
        (("module.balance.target=0.5", "module.balance.steps=2"), ("ckpt_path", "same")),
    ):
        proc = run_script(
            "train.py", "experiment=smoke", "loss=kd", "trainer.max_steps=6", *overrides,
            f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'again'}",
        )  # fmt: skip
        assert_one_line_error(proc, *words)


def test_an_unbalanced_run_records_its_configured_weights(smoke_run):
    run_dir, _ = smoke_run("loss=kd", "module.grad_share_every=2")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["weights"] == {"rec": 1.0, "resp": 1.0} and "balance" not in results


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (("loss=kd", "module.balance.target=-1"), ("module.balance.target", "positive")),
        (("loss=kd", "module.balance.target=nan"), ("module.balance.target", "positive")),
        (("loss=scratch", "module.balance.target=1"), ("module.balance", "no term besides")),
        (("loss=kd", "loss.terms.rec.weight=0", "module.balance.target=1"), ("'rec'",)),
        (("loss=kd", "module.balance.target=1", "module.balance.steps=4"), ("max_steps=4",)),
        (("loss=dukd", "module.balance.target=1"), ("zoom_in", "loss.step_groups")),
        (("loss=kd", "module.balance=1"), ("module.balance must be",)),
    ],
)
def test_bad_balance_options_are_one_line(tmp_path, overrides, words):
    proc = run_script("train.py", "experiment=smoke", *overrides, f"hydra.run.dir={tmp_path}")
    assert_one_line_error(proc, *words)
