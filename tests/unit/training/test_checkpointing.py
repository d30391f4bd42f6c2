"""Atomic checkpoint writes, NaN never best, strict results.json values."""

import json
import math

import pytest
import torch

from srdistill.outputs import json_safe
from srdistill.training import checkpointing
from srdistill.training.checkpointing import BestCheckpoint, atomic_torch_save


def test_a_failure_during_the_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"global_step": 2, "w": torch.ones(3)}, path)
    real_save = torch.save

    def dies_half_way(obj, f):
        real_save({"global_step": 4, "w": torch.zeros(3)}, f)
        f.truncate(10)  # a partial file, as a kill during the write would leave
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpointing.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"global_step": 4}, path)
    monkeypatch.undo()
    kept = torch.load(path, weights_only=True)
    assert kept["global_step"] == 2 and torch.equal(kept["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_a_completed_write_replaces_the_file(tmp_path):
    path = tmp_path / "sub" / "last.ckpt"
    atomic_torch_save({"global_step": 2}, path)
    atomic_torch_save({"global_step": 4}, path)
    assert torch.load(path, weights_only=True) == {"global_step": 4}
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_a_nan_metric_never_becomes_best(tmp_path):
    best = BestCheckpoint(dirpath=tmp_path, monitor="psnr", mode="max", save_top_k=1)
    assert not best.check_monitor_top_k(None, torch.tensor(math.nan))
    assert not best.check_monitor_top_k(None, torch.tensor(math.inf))
    assert best.check_monitor_top_k(None, torch.tensor(20.0))  # nothing saved yet: a finite one is


def test_results_are_strict_json_with_null_for_non_finite_values():
    results = {"val": {"psnr": math.nan, "ssim": 0.5}, "steps": 4, "x": [math.inf, 1.0]}
    text = json.dumps(json_safe(results), allow_nan=False)
    assert json.loads(text) == {"val": {"psnr": None, "ssim": 0.5}, "steps": 4, "x": [None, 1.0]}
