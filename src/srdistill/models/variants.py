"""Self-describing models: each backbone module declares the registry names it offers.

A module of ``srdistill.models.backbones`` ends with ``FAMILY = Family(...)``: its variants, each
a registry name, the factory its ``conf/model/<name>.yaml`` names as ``_target_``, the arguments
a build record may give it (each with its check, see ``srdistill.models.argument_checks``) and the
values that YAML gives besides ``scale: ${scale}`` (``defaults``); and, when its weights can be
recognised, a reader of their shapes. ``srdistill.models.registry`` and
``srdistill.models.detect`` are built from these declarations alone, so adding a backbone is one
module in that package plus its YAML (``tests/unit/models/test_model_declarations.py`` keeps the
two equal). Only modules of this package are imported, found by listing its own folder.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from srdistill.models.argument_checks import Check

BACKBONES = "srdistill.models.backbones"
# modules outside the backbones package that declare variants too
OTHER_DECLARING_MODULES = ("srdistill.models.pretrained",)

# the sizes a state dict shows (keys and tensor shapes), or None when it is not of the family;
# a KeyError, IndexError, ValueError or ZeroDivisionError also means "not this family"
ShapeReader = Callable[[Mapping[str, torch.Tensor]], dict | None]


@dataclass(frozen=True)
class Variant:
    """One registry name: ``factory(scale=..., **defaults)`` is what its YAML builds."""

    name: str
    factory: Callable[..., nn.Module]
    arguments: Mapping[str, Check]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "scale" not in self.arguments:
            raise ValueError(f"model {self.name}: its arguments must include scale")
        for key, value in self.defaults.items():
            if key not in self.arguments:
                raise ValueError(f"model {self.name}: default {key} is not one of its arguments")
            self.arguments[key](f"{self.name}.{key}", value)


@dataclass(frozen=True)
class Family:
    """The variants of one network (detection tries them in this order) and how to tell its
    weights.

    Detection reads the sizes with ``read_shapes`` (None: weights are never recognised as this
    family), then takes the first of ``candidates(sizes)`` (default: every variant) whose declared
    numbers agree with the sizes and whose network fits the weights exactly; else
    ``generic(sizes)`` (default: the first variant; None: not recognised) given every size read.
    Sizes that are not arguments of the chosen variant (SPAN's width) only help choose it.
    """

    name: str
    variants: tuple[Variant, ...]
    read_shapes: ShapeReader | None = None
    candidates: Callable[[dict], Sequence[str]] | None = None
    generic: Callable[[dict], str | None] | None = None

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError(f"model family {self.name} declares no variants")

    def candidates_for(self, sizes: dict) -> Sequence[str]:
        if self.candidates is None:
            return [variant.name for variant in self.variants]
        return self.candidates(sizes)

    def generic_for(self, sizes: dict) -> str | None:
        return self.variants[0].name if self.generic is None else self.generic(sizes)


def declaring_modules() -> list[str]:
    """Every module of the backbones package (sorted), then the other declaring modules."""
    package = importlib.import_module(BACKBONES)
    found = sorted(info.name for info in pkgutil.iter_modules(package.__path__))
    return [f"{BACKBONES}.{name}" for name in found] + list(OTHER_DECLARING_MODULES)


def discover_families() -> tuple[Family, ...]:
    """The ``FAMILY`` each declaring module ends with (modules without one are helpers)."""
    modules = [importlib.import_module(name) for name in declaring_modules()]
    families = tuple(m.FAMILY for m in modules if isinstance(getattr(m, "FAMILY", None), Family))
    _check_unique(families)
    return families


def _check_unique(families: Sequence[Family]) -> None:
    seen: dict[str, str] = {}
    for family in families:
        for variant in family.variants:
            if variant.name in seen:
                raise ValueError(
                    f"model {variant.name} is declared by both families {seen[variant.name]} "
                    f"and {family.name}: give each variant its own name"
                )
            seen[variant.name] = family.name
