"""Common fixtures: a small real photo, deterministic seeds, isolated caches."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_isolate(monkeypatch, tmp_path_factory):
    torch.manual_seed(0)
    np.random.seed(0)
    # Never write into the user's cache from tests.
    monkeypatch.setenv("SRDISTILL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real 8-bit RGB photo (scikit-image's 'chelsea', 300x451), cropped to 96x120."""
    from skimage import data

    return np.ascontiguousarray(data.chelsea()[100:196, 150:270])
