"""Which of srdistill's architectures a weights file holds, told from the file alone.

In order of trust:

1. a run checkpoint of this project records how its student was built (``student_build``);
2. a safetensors export of this project carries the architecture as plain metadata strings
   (``srdistill_model``, ``srdistill_model_args`` as JSON);
3. any other state dict (a ``.pth`` export, the slim SPAN files, the official EDSR / RCAN / SwinIR
   layouts after ``convert_official_keys``) is recognised from its key names and tensor shapes.

Shapes tell widths, depths, heads, window size and scale; they cannot tell plain numbers such as
EDSR's ``res_scale`` or ``bicubic_skip``. Those are taken from the ``conf/model`` config of the same
size when there is one (``edsr_teacher``'s 0.1 residual scaling, the demo student's bicubic skip),
else from the constructor's defaults. Every answer is a registry name and arguments checked by
``srdistill.models.registry``: nothing read from a file ever names a callable.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from srdistill.models.checkpoint import _reconcile_derived, mismatch_report
from srdistill.models.registry import MODELS, RecordError, check_model, model_name_for

CONF_MODEL_DIR = Path(__file__).resolve().parents[3] / "conf" / "model"
META_MODEL, META_ARGS = "srdistill_model", "srdistill_model_args"
MAX_META_CHARS = 4096

# registry names per family, the first one taking any size (its factory has the plain defaults)
FAMILIES = {
    "span": ("span_ch26", "span_ch28", "span_ch48", "span_ch52"),
    "edsr": (
        "edsr_baseline",
        "edsr_student",
        "edsr_teacher",
        "edsr_sample",
        "edsr_sample_student",
        "edsr_tiny_student",
        "edsr_tiny_teacher",
    ),
    "rcan": ("rcan_student", "rcan_teacher"),
    "swinir": ("swinir_student", "swinir_teacher", "swinir_light"),
}
# (embed_dim, upsampler) of the SwinIR factories
SWINIR_SIZES = {
    "swinir_student": (60, "pixelshuffle"),
    "swinir_teacher": (180, "pixelshuffle"),
    "swinir_light": (60, "pixelshuffledirect"),
}
SPAN_BY_WIDTH = {26: "span_ch26", 28: "span_ch28", 48: "span_ch48", 52: "span_ch52"}

Architecture = tuple[str, dict]


def config_args(name: str, scale: int | None = None) -> dict:
    """The arguments ``conf/model/<name>.yaml`` gives its constructor (checked by the registry);
    the constructor's defaults where the config folder is not there (an installed package)."""
    check_model(name, {})
    path = CONF_MODEL_DIR / f"{name}.yaml"
    args: dict = {}
    if path.is_file():
        node = OmegaConf.create({"scale": scale or 4, "model": OmegaConf.load(path)})
        args = dict(OmegaConf.to_container(node, resolve=True)["model"])
        if model_name_for(name, args.pop("_target_", None)) != name:
            return {"scale": scale} if scale else {}
    elif scale:
        args["scale"] = scale
    return check_model(name, args)[1]


def from_metadata(metadata: Mapping[str, str] | None) -> Architecture | None:
    """The architecture a safetensors export of this project names, or None when it names none."""
    if not metadata or META_MODEL not in metadata:
        return None
    name, text = metadata[META_MODEL], metadata.get(META_ARGS, "{}")
    if len(text) > MAX_META_CHARS:
        raise RecordError(f"metadata {META_ARGS} is longer than {MAX_META_CHARS} characters")
    try:
        args = json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordError(f"metadata {META_ARGS} is not JSON ({err.msg})") from None
    return name, check_model(name, args)[1]


def to_metadata(name: str, args: Mapping) -> dict[str, str]:
    """Plain strings for a safetensors header, read back by ``from_metadata``."""
    return {META_MODEL: name, META_ARGS: json.dumps(check_model(name, args)[1], sort_keys=True)}


def detect_architecture(state: Mapping[str, torch.Tensor]) -> Architecture | None:
    """The registry name and arguments of the network ``state`` fits exactly, or None."""
    for family, derive in _DERIVERS.items():
        try:
            derived = derive(state)
        except (KeyError, IndexError, ValueError, ZeroDivisionError):
            continue
        if derived is None:
            continue
        found = _name_for(family, derived, state)
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


def _name_for(family: str, derived: dict, state: Mapping) -> Architecture | None:
    """The first ``conf/model`` config whose network fits ``state`` exactly (its plain numbers
    included), else the family's plain-default name given every size read from the shapes."""
    scale = derived["scale"]
    if family == "span":
        name = SPAN_BY_WIDTH.get(derived.pop("width"))
        return (name, {**config_args(name, scale), **derived}) if name else None
    for name in FAMILIES[family]:
        configured = config_args(name, scale)
        if any(k in configured and configured[k] != v for k, v in derived.items()):
            continue
        if SWINIR_SIZES.get(name, (derived.get("embed_dim"), derived.get("upsampler"))) != (
            derived.get("embed_dim"),
            derived.get("upsampler"),
        ):
            continue  # SwinIR builds for real (not on the meta device): try only plausible ones
        if fits(name, configured, state):
            return name, configured
    generic = "swinir_light" if derived.get("upsampler") == "pixelshuffledirect" else None
    generic = generic or FAMILIES[family][0]
    return generic, {**config_args(generic, scale), **derived}


def _count(state: Mapping, pattern: str) -> int:
    return sum(1 for k in state if re.fullmatch(pattern, k))


def _tail_scale(state: Mapping, prefix: str, num_feat: int) -> int:
    """The factor of a BasicSR ``PixelShuffleUpsample`` (conv + shuffle per factor of 2, or x3)."""
    first = state[f"{prefix}.0.weight"].shape[0]
    if first == 9 * num_feat:
        return 3
    return 2 ** _count(state, rf"{re.escape(prefix)}\.\d+\.weight")


def _span(state: Mapping) -> dict | None:
    training_form = "conv_1.sk.weight" in state
    first = state["conv_1.sk.weight" if training_form else "conv_1.eval_conv.weight"]
    width, in_chans = first.shape[:2]
    scale = math.isqrt(state["upsampler.0.weight"].shape[0] // in_chans)
    return {
        "width": width,
        "scale": scale,
        "in_chans": in_chans,
        "bias": ("conv_1.sk.bias" if training_form else "conv_1.eval_conv.bias") in state,
        "reparameterized": not training_form,
    }


def _edsr(state: Mapping) -> dict | None:
    if "body.0.conv1.weight" not in state:
        return None
    num_feat, in_chans = state["conv_first.weight"].shape[:2]
    return {
        "scale": _tail_scale(state, "upsample", num_feat),
        "num_feat": num_feat,
        "num_block": _count(state, r"body\.\d+\.conv1\.weight"),
        "in_chans": in_chans,
    }


def _rcan(state: Mapping) -> dict | None:
    if "body.0.residual_group.0.rcab.0.weight" not in state:
        return None
    num_feat, in_chans = state["conv_first.weight"].shape[:2]
    squeezed = state["body.0.residual_group.0.rcab.3.attention.1.weight"].shape[0]
    return {
        "scale": _tail_scale(state, "upsample", num_feat),
        "num_feat": num_feat,
        "num_group": _count(state, r"body\.\d+\.conv\.weight"),
        "num_block": _count(state, r"body\.0\.residual_group\.\d+\.rcab\.0\.weight"),
        "squeeze_factor": num_feat // squeezed,
        "in_chans": in_chans,
    }


def _swinir(state: Mapping) -> dict | None:
    if "patch_embed.norm.weight" not in state and "layers.0.conv.weight" not in state:
        return None
    embed_dim, in_chans = state["conv_first.weight"].shape[:2]
    layers = _count(state, r"layers\.\d+\.residual_group\.blocks\.0\.norm1\.weight")
    block = "layers.{}.residual_group.blocks.0.attn.relative_position_bias_table"
    depths = [
        _count(state, rf"layers\.{i}\.residual_group\.blocks\.\d+\.norm1\.weight")
        for i in range(layers)
    ]
    table = state[block.format(0)]
    window = (math.isqrt(table.shape[0]) + 1) // 2
    direct = "conv_before_upsample.0.weight" not in state
    if direct:
        scale = math.isqrt(state["upsample.0.weight"].shape[0] // in_chans)
    else:
        scale = _tail_scale(state, "upsample", state["conv_before_upsample.0.weight"].shape[0])
    hidden = state["layers.0.residual_group.blocks.0.mlp.fc1.weight"].shape[0]
    return {
        "scale": scale,
        "in_chans": in_chans,
        "embed_dim": embed_dim,
        "depths": depths,
        # the bias table holds one column per head: the only place the head count shows
        "num_heads": [state[block.format(i)].shape[1] for i in range(layers)],
        "window_size": window,
        "mlp_ratio": hidden / embed_dim,
        "upsampler": "pixelshuffledirect" if direct else "pixelshuffle",
        "resi_connection": "1conv" if "conv_after_body.weight" in state else "3conv",
        "qkv_bias": "layers.0.residual_group.blocks.0.attn.qkv.bias" in state,
    }


_DERIVERS = {"swinir": _swinir, "rcan": _rcan, "edsr": _edsr, "span": _span}
assert set(_DERIVERS) == set(FAMILIES) and all(n in MODELS for f in FAMILIES.values() for n in f)
