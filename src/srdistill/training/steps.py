"""Pieces of one manual-optimisation iteration that are not specific to distillation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


def freeze(module: nn.Module) -> nn.Module:
    """``module`` in eval mode with no parameter requiring grad (the teacher)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def step_without_counting(optimizer) -> None:
    """Step a Lightning-wrapped optimizer without advancing ``trainer.global_step``.

    In manual optimisation Lightning counts every optimizer step, so a G+D iteration would count
    twice and ``max_steps``/schedules would mean half as many iterations. Only the generator's
    last step counts: one iteration is one step, whatever the number of optimizers.
    """
    counted = optimizer._on_before_step, optimizer._on_after_step
    optimizer._on_before_step = optimizer._on_after_step = lambda: None
    try:
        optimizer.step()
    finally:
        optimizer._on_before_step, optimizer._on_after_step = counted


@contextmanager
def eval_mode(module: nn.Module | None, enabled: bool) -> Iterator[None]:
    """``module`` in eval mode inside the block when ``enabled``; its previous mode after."""
    was_training = module.training if module is not None else False
    if enabled and module is not None:
        module.eval()
    try:
        yield
    finally:
        if enabled and module is not None:
            module.train(was_training)
