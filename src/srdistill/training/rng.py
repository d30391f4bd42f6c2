"""Saving and restoring every random generator a run draws from, for exact resumes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def capture_rng_state() -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    # plain Python types only, so checkpoints stay loadable with torch.load(weights_only=True)
    state = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def rng_untouched() -> Iterator[None]:
    """Leaves every generator as it found it: a side job during training (a sample strip) must not
    shift the run's random draws, or a resumed run would not repeat the uninterrupted one."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)
