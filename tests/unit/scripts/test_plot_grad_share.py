"""scripts/plot_grad_share.py: a PNG from runs' grad_share histories, one-line errors."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.shared import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    "plot_grad_share", REPO_ROOT / "scripts" / "plot_grad_share.py"
)
plot_grad_share = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot_grad_share)


def _run(folder, history):
    folder.mkdir()
    record = {"every": 2, "history": history, "summary": {}}
    (folder / "results.json").write_text(json.dumps({"steps": 4, "grad_share": record}))
    return folder


HISTORY = [
    {"step": 0, "resp/ratio": 0.5, "resp/cos": 0.9, "others/ratio": 0.5, "others/cos": 0.9},
    {"step": 2, "resp/ratio": 0.2, "resp/cos": None, "others/ratio": 0.2, "others/cos": 0.1},
]


def test_history_is_read_per_term_with_null_as_nan(tmp_path):
    steps, ratio, cos = plot_grad_share.load_history(_run(tmp_path / "a", HISTORY), "resp")
    assert steps == [0, 2] and ratio == [0.5, 0.2]
    assert cos[0] == 0.9 and cos[1] != cos[1]


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    a, b = _run(tmp_path / "a", HISTORY), _run(tmp_path / "b", HISTORY[:1])
    out = tmp_path / "fig" / "share.png"
    assert plot_grad_share.main([f"{a}=kd", str(b), "--out", str(out), "--term", "resp"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_without_grad_share_is_one_line(tmp_path):
    run = tmp_path / "plain"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"steps": 4}))
    proc = run_script("scripts/plot_grad_share.py", str(run), "--out", str(tmp_path / "x.png"))
    assert_one_line_error(proc, "plain", "grad_share_every")


def test_unknown_term_names_the_available_ones(tmp_path):
    run = _run(tmp_path / "a", HISTORY)
    with pytest.raises(plot_grad_share.PlotError, match="--term.*others.*resp"):
        plot_grad_share.load_history(run, "cont")
