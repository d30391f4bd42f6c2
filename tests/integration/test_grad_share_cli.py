"""train.py module.grad_share_every: the shares in results.json and in the logged metrics."""

import csv
import json

from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.training import SMOKE_RUNS


def test_smoke_run_logs_gradient_shares(smoke_run):
    tmp_path, _ = smoke_run(*SMOKE_RUNS["kd"])
    assert "module.grad_share_every=2" in SMOKE_RUNS["kd"]
    record = json.loads((tmp_path / "results.json").read_text())["grad_share"]
    assert record["every"] == 2
    assert [r["step"] for r in record["history"]] == [0, 2]
    last = record["history"][-1]
    assert record["summary"]["resp"]["ratio_last"] == last["resp/ratio"] > 0
    assert -1 <= record["summary"]["resp"]["cos_mean"] <= 1
    # one term besides rec: "others" is that term
    assert last["others/ratio"] == last["resp/ratio"]
    with next((tmp_path / "csv").rglob("metrics.csv")).open() as f:
        rows = list(csv.DictReader(f))
    logged = [r for r in rows if r.get("train/grad_share/resp/ratio")]
    assert {"train/grad_share/resp/ratio", "train/grad_share/resp/cos"} <= set(rows[0])
    assert [int(r["step"]) for r in logged] == [0, 2]


def test_a_loss_without_rec_is_one_line(tmp_path):
    proc = run_script(
        "train.py",
        "experiment=smoke",
        "loss=kd",
        "loss.terms.rec.weight=0",
        "module.grad_share_every=2",
        f"hydra.run.dir={tmp_path}",
    )
    assert_one_line_error(proc, "module.grad_share_every", "rec")
