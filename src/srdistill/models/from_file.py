"""A network of srdistill's architectures from one file: a run checkpoint, an export, a
released or official weights file (``srdistill.models.load`` is what entry points call).

The architecture comes from the file where it can (see ``srdistill.models.detect``) or from a
registry name the user gives; either way the network is built from checked plain values through
the registry and the weights are read by the one reader, strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import nn

from srdistill.models.checkpoint import (
    CheckpointError,
    convert_official_keys,
    load_state_strictly,
    read_checkpoint_file,
    unwrap_state_dict,
)
from srdistill.models.detect import (
    Architecture,
    config_args,
    detect_architecture,
    from_metadata,
)
from srdistill.models.registry import MODELS, BuildRecordError, build_from_record, check_model
from srdistill.models.run_student import BUILD_RECORD_KEY, deployed_student_with_architecture


def is_run_checkpoint(raw: object) -> bool:
    return isinstance(raw, Mapping) and "state_dict" in raw and BUILD_RECORD_KEY in raw


def network_from_weights(
    raw: object,
    path: str | Path,
    model: str | None = None,
    scale: int | None = None,
    option: str = "ckpt",
    use_ema: bool = True,
) -> tuple[nn.Module, Architecture | None] | None:
    """The network of srdistill's that ``raw`` (read from ``path``) holds, in eval mode, and its
    architecture ``(name, args)``; None when no ``model`` is given and the weights are of no
    architecture srdistill implements.

    ``model``: a registry name for files that do not say (its ``conf/model`` arguments are used,
    sizes read from the weights where the name leaves them open); ``scale``: the factor expected
    (a file made for another one is refused).
    """
    if is_run_checkpoint(raw):
        network, arch = deployed_student_with_architecture(path, use_ema, option)
        if model is not None and arch is not None and model != arch[0]:
            raise ValueError(
                f"{option}={path} is a training run of {arch[0]}, not {model}; leave out the model"
            )
    else:
        state = _converted(unwrap_state_dict(raw, path), path, model)
        arch = None if state is None else _architecture(path, state, model, scale, option)
        if arch is None:
            return None
        network = _load(arch, state, path, option)
    if arch is not None and scale is not None and arch[1].get("scale", scale) != scale:
        raise ValueError(
            f"{option}={path} holds a x{arch[1]['scale']} network, not x{scale}; "
            f"drop the scale option or give scale={arch[1]['scale']}"
        )
    return network.eval(), arch


def network_from_file(
    path: str | Path,
    model: str | None = None,
    scale: int | None = None,
    option: str = "ckpt",
    use_ema: bool = True,
) -> tuple[nn.Module, Architecture | None]:
    """``network_from_weights`` of the file at ``path``; a file of none of srdistill's
    architectures is a one-line error (``srdistill.models.load`` reads those through spandrel)."""
    raw = read_checkpoint_file(path, option)
    found = network_from_weights(raw, path, model, scale, option, use_ema)
    if found is None:
        raise CheckpointError(
            f"{option}={path}: cannot tell its architecture from the weights; give the model "
            f"name (one of {', '.join(MODELS)})"
        )
    return found


def _converted(state: dict, path, model: str | None) -> dict | None:
    """``state`` with official EDSR / RCAN names converted; None when the conversion refuses a
    file no model was named for (another architecture's keys may look official)."""
    try:
        return convert_official_keys(state, path)
    except CheckpointError:
        if model is None:
            return None
        raise


def _architecture(path, state: dict, model, scale, option: str) -> Architecture | None:
    try:
        if model is not None:
            return _named(model, state, scale)
        recorded = from_metadata(_safetensors_metadata(path))
    except BuildRecordError as err:
        raise CheckpointError(f"{option}={path}: {err}") from None
    return recorded or detect_architecture(state)


def _named(model: str, state: dict, scale: int | None) -> Architecture:
    """The configured architecture ``model``; sizes and scale the weights show win when the file
    is of the same family (``span_ch26`` at x2, an EDSR of another width)."""
    detected = detect_architecture(state) if state else None
    if detected is not None and MODELS[detected[0]][0] is MODELS[model][0]:
        if scale is None or detected[1].get("scale") == scale:
            return model, {**config_args(model, detected[1].get("scale")), **detected[1]}
    return model, config_args(model, scale)


def _safetensors_metadata(path) -> dict | None:
    if Path(path).suffix != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata()


def _load(arch: Architecture, state: dict, path, option: str) -> nn.Module:
    name, args = arch
    check_model(name, args)
    try:
        network = build_from_record(name, args, None)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{option}={path}: {name} does not build: {err}") from None
    return load_state_strictly(network, state, f"{option}={path}", name)


def fresh_network(arch: Architecture, weights_file: str | Path) -> nn.Module:
    """A new ``arch`` network holding ``weights_file``'s tensors (read by the one reader)."""
    state = convert_official_keys(unwrap_state_dict(read_checkpoint_file(weights_file)))
    return _load(arch, state, weights_file, "file").eval()
