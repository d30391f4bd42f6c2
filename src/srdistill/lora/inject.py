"""Putting ConvLoRA adapters into any network by module-name patterns (``conf/lora/*.yaml``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from torch import nn

from srdistill.lora.conv import LoRAConv2d


def _rules(targets: Sequence[Mapping]) -> list[tuple[re.Pattern, dict]]:
    rules = []
    for i, target in enumerate(targets):
        if "pattern" not in target or "rank" not in target:
            raise ValueError(f"lora.targets[{i}] needs 'pattern' and 'rank', got {dict(target)}")
        extra = sorted(set(target) - {"pattern", "rank", "alpha"})
        if extra:
            raise ValueError(f"lora.targets[{i}] has unknown key(s) {extra}; use rank and alpha")
        rank = int(target["rank"])
        alpha = float(target.get("alpha") or 2 * rank)
        rules.append((re.compile(target["pattern"]), {"rank": rank, "alpha": alpha}))
    return rules


def _check_rank(name: str, conv: nn.Conv2d, rank: int) -> None:
    """A rank above min(C_out, C_in/groups) adds parameters but no expressiveness: the kernel
    update ``B @ A`` of shape (C_out*k, C_in/groups*k) cannot have rank above k times that."""
    limit = min(conv.out_channels, conv.in_channels // conv.groups)
    if rank > limit:
        raise ValueError(
            f"lora.targets: rank {rank} for conv {name} exceeds its limit {limit} "
            f"(min of {conv.out_channels} output and {conv.in_channels // conv.groups} input "
            "channels per group); lower the rank"
        )


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


class LoRASpec:
    """Which convs get adapters (first matching ``pattern`` wins, ``re.fullmatch`` on module
    names), with what rank/alpha, and how they train.

    ``scaling``: ``lora`` (alpha/r) or ``rslora`` (alpha/sqrt r); ``train_a=False`` is LoRA-FA;
    ``b_lr_ratio > 1`` is LoRA+; ``train_bias`` also trains the adapted convs' biases.
    ``freeze_base``: everything but the adapters stops learning (the point of LoRA).
    """

    def __init__(
        self,
        targets: Sequence[Mapping],
        scaling: str = "lora",
        a_init: str = "kaiming_uniform",
        train_a: bool = True,
        train_bias: bool = False,
        b_lr_ratio: float = 1.0,
        freeze_base: bool = True,
    ) -> None:
        if not targets:
            raise ValueError("lora.targets is empty: give at least one {pattern, rank}")
        if b_lr_ratio <= 0:
            raise ValueError(f"lora.b_lr_ratio must be positive, got {b_lr_ratio}")
        self.rules = _rules(targets)
        self.adapter_kwargs = {
            "scaling": scaling,
            "a_init": a_init,
            "train_a": train_a,
            "train_bias": train_bias,
            "b_lr_ratio": b_lr_ratio,
        }
        self.freeze_base = freeze_base

    def match(self, name: str) -> dict | None:
        for pattern, rank_alpha in self.rules:
            if pattern.fullmatch(name):
                return rank_alpha
        return None

    def apply(self, model: nn.Module) -> dict[str, LoRAConv2d]:
        """Replace every matching ``nn.Conv2d`` in place; returns the adapters by module name.

        Fails if a pattern matches no conv, so a typo never silently trains nothing.
        """
        found = {
            name: module
            for name, module in model.named_modules()
            if type(module) is nn.Conv2d and self.match(name) is not None
        }
        unused = [p.pattern for p, _ in self.rules if not any(p.fullmatch(n) for n in found)]
        if unused:
            convs = [n for n, m in model.named_modules() if type(m) is nn.Conv2d][:8]
            raise ValueError(
                f"lora.targets pattern(s) {unused} match no Conv2d of {type(model).__name__}; "
                f"conv names look like {convs}"
            )
        for name, conv in found.items():
            _check_rank(name, conv, self.match(name)["rank"])
        if self.freeze_base:
            model.requires_grad_(False)
        adapters = {}
        for name, conv in found.items():
            adapters[name] = LoRAConv2d.wrap(conv, **self.match(name), **self.adapter_kwargs)
            replace_module(model, name, adapters[name])
        return adapters


def lora_modules(model: nn.Module) -> dict[str, LoRAConv2d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRAConv2d)}


def lora_param_groups(params: Sequence[nn.Parameter], model: nn.Module) -> list[dict]:
    """Optimiser groups: every ``B`` whose adapter has ``b_lr_ratio != 1`` in a group of its own
    with ``lr_scale`` (LoRA+); everything else in the first group."""
    scaled: dict[float, list[nn.Parameter]] = {}
    for adapter in lora_modules(model).values():
        if adapter.b_lr_ratio != 1.0 and adapter.lora_B.requires_grad:
            scaled.setdefault(adapter.b_lr_ratio, []).append(adapter.lora_B)
    special = {id(p) for group in scaled.values() for p in group}
    groups = [{"params": [p for p in params if id(p) not in special]}]
    groups += [{"params": ps, "lr_scale": ratio} for ratio, ps in scaled.items()]
    return [g for g in groups if g["params"]]


def lora_optimizer(factory, params: Sequence[nn.Parameter], model: nn.Module):
    """``factory(groups)`` over ``lora_param_groups``, each group's learning rate scaled by its
    ``lr_scale`` (LoRA+: B's learning rate is a multiple of A's)."""
    optimizer = factory(lora_param_groups(params, model))
    for group in optimizer.param_groups:
        group["lr"] *= group.get("lr_scale", 1.0)
    return optimizer
