"""Which of srdistill's architectures a weights file holds, told from the file alone.

In order of trust:

1. a run checkpoint of this project records how its student was built (its build record,
   under ``student_build``);
2. a safetensors export of this project carries the architecture as plain metadata strings
   (``srdistill_model``, ``srdistill_model_args`` as JSON);
3. any other state dict (a ``.pth`` export, the slim SPAN files, the official EDSR / RCAN / SwinIR
   layouts after ``convert_official_keys``) is recognised from its key names and tensor shapes.

Shapes tell widths, depths, heads, window size and scale; they cannot tell plain numbers such as
EDSR's ``res_scale`` or ``bicubic_skip``. Those are taken from the declared variant of the same
size when there is one (``edsr_teacher``'s 0.1 residual scaling, the demo student's bicubic
skip), else from the constructor's defaults. Each backbone module declares its variants and how
to read its weights (``srdistill.models.variants``); detection tries every declared family. Every
answer is a registry name and arguments checked by ``srdistill.models.registry``: nothing read
from a file ever names a callable.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping

import torch
from torch import nn

from srdistill.models.checkpoint import _reconcile_derived, mismatch_report
from srdistill.models.registry import FAMILIES, MODELS, VARIANTS, BuildRecordError, check_model
from srdistill.models.variants import Family

META_MODEL, META_ARGS = "srdistill_model", "srdistill_model_args"
MAX_META_CHARS = 4096

Architecture = tuple[str, dict]
# what a shape reader raises on weights of another network
NOT_THIS_FAMILY = (KeyError, IndexError, ValueError, ZeroDivisionError)


def config_args(name: str, scale: int | None = None) -> dict:
    """The arguments ``conf/model/<name>.yaml`` gives its constructor (``scale`` for its
    ``${scale}``, 4 when None), as the variant declares them: no file is read, so an installed
    package gives the same (a test keeps each declaration equal to its YAML)."""
    check_model(name, {})
    return check_model(name, {"scale": scale or 4, **VARIANTS[name].defaults})[1]


def from_metadata(metadata: Mapping[str, str] | None) -> Architecture | None:
    """The architecture a safetensors export of this project names, or None when it names none."""
    if not metadata or META_MODEL not in metadata:
        return None
    name, text = metadata[META_MODEL], metadata.get(META_ARGS, "{}")
    if len(text) > MAX_META_CHARS:
        raise BuildRecordError(f"metadata {META_ARGS} is longer than {MAX_META_CHARS} characters")
    try:
        args = json.loads(text)
    except json.JSONDecodeError as err:
        raise BuildRecordError(f"metadata {META_ARGS} is not JSON ({err.msg})") from None
    return name, check_model(name, args)[1]


def to_metadata(name: str, args: Mapping) -> dict[str, str]:
    """Plain strings for a safetensors header, read back by ``from_metadata``."""
    return {META_MODEL: name, META_ARGS: json.dumps(check_model(name, args)[1], sort_keys=True)}


def detect_architecture(state: Mapping[str, torch.Tensor]) -> Architecture | None:
    """The registry name and arguments of the network ``state`` fits exactly, or None."""
    for family in FAMILIES:
        if family.read_shapes is None:
            continue
        try:
            sizes = family.read_shapes(state)
        except NOT_THIS_FAMILY:
            continue
        if sizes is None:
            continue
        found = _name_for(family, sizes, state)
        if found is not None and fits(*found, state):
            return found
    return None


def fits(name: str, args: Mapping, state: Mapping[str, torch.Tensor]) -> bool:
    """Whether the network ``name(**args)`` has exactly the tensors of ``state``."""
    network = build_shapes_only(name, args)
    return mismatch_report(network, _reconcile_derived(dict(state), network.state_dict())) is None


def build_shapes_only(name: str, args: Mapping) -> nn.Module:
    constructor, checked = check_model(name, args)
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return constructor(**checked)
    except NotImplementedError:  # SwinIR reads values while building
        return constructor(**checked)


def _name_for(family: Family, sizes: dict, state: Mapping) -> Architecture | None:
    """The first declared variant whose network fits ``state`` exactly (its plain numbers
    included), else the family's generic variant given every size read from the shapes."""
    scale = sizes["scale"]
    for name in family.candidates_for(sizes):
        configured = config_args(name, scale)
        if any(k in configured and configured[k] != v for k, v in sizes.items()):
            continue
        if fits(name, configured, state):
            return name, configured
    generic = family.generic_for(sizes)
    if generic is None:
        return None
    its_arguments = {k: v for k, v in sizes.items() if k in MODELS[generic][1]}
    return generic, {**config_args(generic, scale), **its_arguments}
