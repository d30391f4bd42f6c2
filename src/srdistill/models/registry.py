"""The architectures a run checkpoint may name, and its build record checked as plain values.

A run checkpoint records how its student was built as plain values::

    {"model": "span_ch26", "model_args": {"scale": 4, "reparameterized": True},
     "lora": {"targets": [{"pattern": "...", "rank": 2, "alpha": 4}], "scaling": "lora", ...},
     "average_weight": 0.5}

The name picks a constructor from the closed table ``MODELS``, built from the declarations each
backbone module ends with (``srdistill.models.variants``; one per ``conf/model/*.yaml``
architecture); nothing read from a file is ever imported, looked up by dotted path or called by
name. Every argument is checked against that constructor's allowed keywords, types and ranges
and LoRA is rebuilt through ``LoRASpec`` from checked values only. Any other value raises
``BuildRecordError`` naming the offending field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from srdistill.lora.conv import A_INITS, SCALINGS
from srdistill.lora.inject import LoRASpec
from srdistill.models.argument_checks import (
    BuildRecordError,
    Check,
    flag,
    integer,
    number,
    one_of,
)
from srdistill.models.variants import Family, Variant, discover_families

LORA_TARGET = "srdistill.lora.inject.LoRASpec"
MAX_PATTERN_CHARS = 256
MAX_LORA_TARGETS = 64

FAMILIES: tuple[Family, ...] = discover_families()
# every registry name, sorted (the order error messages list them in)
VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in sorted((v for f in FAMILIES for v in f.variants), key=lambda v: v.name)
}
# registry name -> (the constructor its conf/model YAML's _target_ names, the keywords it may take)
MODELS: dict[str, tuple[Callable[..., nn.Module], Mapping[str, Check]]] = {
    name: (variant.factory, variant.arguments) for name, variant in VARIANTS.items()
}

LORA_OPTIONS: dict[str, Check] = {
    "scaling": one_of(*SCALINGS),
    "a_init": one_of(*A_INITS),
    "train_a": flag,
    "train_bias": flag,
    "b_lr_ratio": number(0.0, 1.0e4, low_open=True),
    "freeze_base": flag,
}
LORA_RANK = integer(1, 4096)
LORA_ALPHA = number(0.0, 1.0e6, low_open=True)


def target_path(constructor: Callable) -> str:
    """The dotted path a config's ``_target_`` spells for ``constructor``."""
    return f"{constructor.__module__}.{constructor.__qualname__}"


def model_name_for(choice: str, target: Any) -> str | None:
    """The allowed name of a composed model config, or None when its ``_target_`` is not ours.

    ``choice`` is the config group choice (``span_ch26``); outside Hydra it is not a name and the
    first allowed name with the same constructor is taken (its arguments are recorded in full).
    """
    if choice in MODELS:
        return choice if target == target_path(MODELS[choice][0]) else None
    return next((name for name, (ctor, _) in MODELS.items() if target == target_path(ctor)), None)


def _plain_mapping(field: str, value: Any) -> Mapping:
    if not isinstance(value, Mapping) or not all(type(k) is str for k in value):
        raise BuildRecordError(f"{field} must be a table of named plain values")
    return value


def check_model(name: Any, args: Any) -> tuple[Callable[..., nn.Module], dict]:
    """The allowed constructor for ``name`` and its checked keyword arguments."""
    if type(name) is not str or name not in MODELS:
        raise BuildRecordError(
            f"model {name!r:.80} is not one of srdistill's models {sorted(MODELS)}"
        )
    constructor, allowed = MODELS[name]
    args = _plain_mapping("model_args", args)
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise BuildRecordError(f"model_args {unknown[:4]!r:.120} are not arguments of model {name}")
    return constructor, {key: allowed[key](f"model_args.{key}", v) for key, v in args.items()}


def check_lora(lora: Any) -> dict | None:
    """Plain LoRA options (``LoRASpec``'s keywords) checked key by key; None: no adapters."""
    if lora is None:
        return None
    lora = dict(_plain_mapping("lora", lora))
    target = lora.pop("_target_", LORA_TARGET)  # older records name the class: only ours passes
    if type(target) is not str or target != LORA_TARGET:
        raise BuildRecordError(f"lora._target_ {target!r:.80} is not srdistill's LoRASpec")
    unknown = sorted(set(lora) - set(LORA_OPTIONS) - {"targets"})
    if unknown:
        raise BuildRecordError(f"lora {unknown[:4]!r:.120} are not LoRA options")
    options = {
        key: check(f"lora.{key}", lora[key]) for key, check in LORA_OPTIONS.items() if key in lora
    }
    return {"targets": _check_lora_targets(lora.get("targets")), **options}


def _check_lora_targets(targets: Any) -> list[dict]:
    if type(targets) not in (list, tuple) or not 1 <= len(targets) <= MAX_LORA_TARGETS:
        raise BuildRecordError(f"lora.targets must be a list of 1 to {MAX_LORA_TARGETS} tables")
    checked = []
    for i, target in enumerate(targets):
        field = f"lora.targets[{i}]"
        target = _plain_mapping(field, target)
        if not {"pattern", "rank"} <= set(target) <= {"pattern", "rank", "alpha"}:
            raise BuildRecordError(f"{field} must hold pattern, rank and optionally alpha")
        pattern = target["pattern"]
        if type(pattern) is not str or not 0 < len(pattern) <= MAX_PATTERN_CHARS:
            raise BuildRecordError(
                f"{field}.pattern must be text of 1 to {MAX_PATTERN_CHARS} chars"
            )
        try:
            re.compile(pattern)
        except re.error as err:
            raise BuildRecordError(f"{field}.pattern is not a regular expression: {err}") from None
        item = {"pattern": pattern, "rank": LORA_RANK(f"{field}.rank", target["rank"])}
        if target.get("alpha") is not None:
            item["alpha"] = LORA_ALPHA(f"{field}.alpha", target["alpha"])
        checked.append(item)
    return checked


def record_architecture(build: Mapping) -> tuple[Any, Any]:
    """``(model, model_args)`` of a build record; older records held the resolved config as
    ``arch`` with its ``_target_``, which is only compared with the allowed constructors' paths."""
    if "arch" not in build:
        return build.get("model"), build.get("model_args", {})
    arch = dict(_plain_mapping("arch", build["arch"]))
    target = arch.pop("_target_", None)
    name = model_name_for("", target) if type(target) is str else None
    if name is None:
        raise BuildRecordError(f"arch._target_ {target!r:.80} is not one of srdistill's models")
    return name, arch


def build_record_of(choice: str, arch: Mapping, lora: Mapping | None, average_weight) -> dict:
    """The build record of a composed student config: plain values ``build_from_record`` takes,
    or, for a config that is not one of srdistill's models, why export cannot rebuild it."""
    arch = dict(arch)
    target = arch.pop("_target_", None)
    name = model_name_for(choice, target)
    try:
        if name is None:
            raise BuildRecordError(
                f"student.arch._target_={target} is not one of srdistill's models"
            )
        _, model_args = check_model(name, arch)
        lora_options = check_lora(lora)
    except BuildRecordError as err:
        return {"model": None, "unavailable": str(err), "average_weight": average_weight}
    return {
        "model": name,
        "model_args": model_args,
        "lora": lora_options,
        "average_weight": average_weight,
    }


def build_from_record(model: Any, model_args: Any, lora: Any) -> nn.Module:
    """The recorded architecture with its adapters, from checked plain values only."""
    constructor, args = check_model(model, model_args)
    lora_options = check_lora(lora)
    network = constructor(**args)
    if lora_options:
        LoRASpec(**lora_options).apply(network)
    return network
