"""benchmarks/gpu_check.py without a CUDA GPU: one ``error:`` line and exit 2, before any work
(the checks themselves run in tests/integration/test_gpu_check.py)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from tests.helpers.shared import REPO_ROOT


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # gpu_check imports train_step, its neighbour, by this name
    spec.loader.exec_module(module)
    return module


load_benchmark("train_step")
gpu_check = load_benchmark("gpu_check")


@pytest.mark.parametrize("device", [(), ("--device", "cuda:0")], ids=["default", "cuda0"])
def test_without_cuda_it_says_so_in_one_line_and_exits_2(monkeypatch, capsys, tmp_path, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu_check" / "gpu_check.json"
    with pytest.raises(SystemExit) as exit_:
        gpu_check.main([*device, "--json", str(out)])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("error: no CUDA GPU") and "--device cpu" in line
    assert captured.out == "" and not out.parent.exists()
