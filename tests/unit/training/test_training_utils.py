import random

import numpy as np
import pytest
import torch

from srdistill.training.ema import ExponentialMovingAverage
from srdistill.training.loggers import wandb_api_key_configured, wandb_logger
from srdistill.training.rng import capture_rng_state, restore_rng_state


def test_ema_update_is_the_exponential_average():
    live = torch.nn.Linear(2, 1)
    ema = ExponentialMovingAverage(live, decay=0.75)
    before = ema.module.weight.detach().clone()
    with torch.no_grad():
        live.weight.add_(1.0)
    ema.update(live)
    assert torch.allclose(ema.module.weight, 0.75 * before + 0.25 * live.weight)
    assert not any(p.requires_grad for p in ema.parameters())
    with pytest.raises(ValueError, match="ema_decay"):
        ExponentialMovingAverage(live, decay=1.0)


def test_rng_state_round_trip():
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.random(), np.random.rand(), torch.rand(1)
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_wandb_is_offline_without_a_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    assert not wandb_api_key_configured()
    logger = wandb_logger("srdistill-test", save_dir=str(tmp_path))
    assert logger._wandb_init["mode"] == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_logger("p", save_dir=str(tmp_path))._wandb_init["mode"] == "disabled"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_api_key_configured()
