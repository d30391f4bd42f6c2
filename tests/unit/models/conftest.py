"""Fixtures shared by the model-loading tests."""

from __future__ import annotations

import pytest
import torch

from srdistill.models import zoo


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """torch's hub cache in a temporary folder, and a registry holding the test's entries."""
    # set and restored as torch keeps it: unset, torch.hub reads TORCH_HOME at each call
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    entries = {}
    monkeypatch.setattr(zoo, "load_registry", lambda text=None: entries)
    return entries
