"""From a trained adapted network to the deployed one: merge, average, fold.

The deployed network has exactly the original architecture and keys: every ``LoRAConv2d``
becomes the plain ``nn.Conv2d`` it computes, then (DSCLoRA) the weights are averaged with the
pre-trained ones, then re-parameterisable blocks (SPAN's Conv3XC) are folded.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from srdistill.lora.inject import lora_modules, replace_module


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every adapter by its merged plain conv, in place; returns ``model``."""
    for name, adapter in lora_modules(model).items():
        replace_module(model, name, adapter.to_conv2d())
    return model


@torch.no_grad()
def average_with(model: nn.Module, reference: Mapping[str, torch.Tensor], weight: float) -> None:
    """``p <- weight * p + (1 - weight) * reference[p]`` for every floating parameter/buffer.

    ``weight`` is the trained model's share (1 keeps it, 0 restores the reference).
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"average weight must be in [0, 1], got {weight}")
    state = model.state_dict()
    missing = sorted(set(state) - set(reference))
    if missing:
        raise ValueError(f"the pre-trained reference has no tensor for {missing[:4]}")
    for key, value in state.items():
        if value.is_floating_point():
            value.lerp_(reference[key].to(value), 1.0 - weight)


def fold_reparameterizable(model: nn.Module) -> nn.Module:
    """Fold training-form blocks (SPAN's Conv3XC) into their inference convs, if any."""
    fold = getattr(model, "reparameterize", None)
    if callable(fold):
        fold()
    return model


def deployable(
    model: nn.Module,
    reference: Mapping[str, torch.Tensor] | None = None,
    average_weight: float | None = None,
) -> nn.Module:
    """The network to ship, in place: adapters merged, optionally averaged, blocks folded."""
    merge_lora(model)
    if average_weight is not None:
        if reference is None:
            raise ValueError("average_weight is set but no pre-trained reference weights exist")
        average_with(model, reference, average_weight)
    return fold_reparameterizable(model)
