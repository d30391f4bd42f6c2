"""The deployed student of a training run, rebuilt from its checkpoint.

A run checkpoint records how its student was built as plain values (an allowed architecture name
and its arguments, LoRA targets, average weight; see ``srdistill.models.registry``) and, when
averaging, the pre-trained weights. Rebuilding from that record, loading the trained (EMA)
weights, merging the adapters, averaging and folding re-parameterisable blocks gives the network
a plain implementation of the architecture loads with ``strict=True``: for SPAN, the slim
``eval_conv`` format of the released checkpoints. Nothing read from the file names code.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from srdistill.lora.merge import deployable
from srdistill.models.argument_checks import BuildRecordError, number
from srdistill.models.checkpoint import (
    CheckpointError,
    mismatch_report,
    read_run_checkpoint,
    student_weights,
)
from srdistill.models.detect import Architecture, fits
from srdistill.models.registry import MODELS, build_from_record, check_model, record_architecture

# where a run checkpoint keeps its student's build record (the name every run file has used)
BUILD_RECORD_KEY = "student_build"
NOT_A_RUN = "export takes the last.ckpt / best-*.ckpt of a train.py run"
AVERAGE_WEIGHT = number(0.0, 1.0)


def student_from_record(
    build: object, weights: Mapping[str, torch.Tensor], path: str | Path, option: str = "ckpt"
) -> nn.Module:
    """The recorded architecture and adapters, from plain allowed values only (never code),
    holding ``weights``."""
    where = f"{option}={path}: {BUILD_RECORD_KEY}"
    if not isinstance(build, Mapping):
        raise CheckpointError(f"{where} is not a table of plain values")
    if build.get("unavailable"):
        raise CheckpointError(
            f"{where} says the student cannot be rebuilt ({str(build['unavailable'])[:200]}); "
            "a student of your own code exports with model=<its conf/model name> and your "
            'config dir on hydra.searchpath (docs/GUIDE.md, "Extending srdistill")'
        )
    try:
        model, model_args = record_architecture(build)
        if build.get("average_weight") is not None:
            AVERAGE_WEIGHT("average_weight", build["average_weight"])
        _check_sizes_on_meta(model, model_args, build.get("lora"), weights, where)
        network = build_from_record(model, model_args, build.get("lora"))
    except BuildRecordError as err:
        raise CheckpointError(f"{where}.{err}") from None
    except (ValueError, TypeError) as err:  # the constructor refused checked values
        raise CheckpointError(f"{where} does not build: {str(err).splitlines()[0]}") from None
    network.load_state_dict(weights, strict=True)
    return network


def _check_sizes_on_meta(model, model_args, lora, weights: Mapping, where: str) -> None:
    """The sizes a file asks for must match its own weights before any memory is allocated:
    the network is first built on the meta device (tensors without storage)."""
    try:
        # sample_teacher loads its shipped weights into the storage-less copy: a no-op warning
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            shapes_only = build_from_record(model, model_args, lora)
    except NotImplementedError:  # SwinIR reads values while building; its ranges are tighter
        return
    problem = mismatch_report(shapes_only, weights)
    if problem:
        raise CheckpointError(f"{where} does not fit its weights: {problem}")


def deployed_student(path: str | Path, use_ema: bool = True, option: str = "ckpt") -> nn.Module:
    """Rebuild the run's student and finish it as training's final evaluation did."""
    return deployed_student_with_architecture(path, use_ema, option)[0]


def deployed_student_with_architecture(
    path: str | Path, use_ema: bool = True, option: str = "ckpt"
) -> tuple[nn.Module, Architecture | None]:
    """The deployed student and the plain architecture its weights fit (None if no registry
    name fits them, e.g. a width no SPAN name has)."""
    ckpt = read_run_checkpoint(path, option, NOT_A_RUN, needs=("state_dict", BUILD_RECORD_KEY))
    build = ckpt[BUILD_RECORD_KEY]
    weights = student_weights(ckpt["state_dict"], use_ema, path)
    model = _finished(student_from_record(build, weights, path, option), ckpt, path, option)
    return model, deployed_architecture(*record_architecture(build), model)


def deployed_student_into(
    network: nn.Module, path: str | Path, use_ema: bool = True, option: str = "ckpt"
) -> nn.Module:
    """The run's student weights loaded strictly into ``network``, a student the user's own
    config built (a model srdistill does not know, named by the command line, never by the
    file), finished as training's final evaluation did. Adapters cannot be rebuilt this way."""
    ckpt = read_run_checkpoint(path, option, NOT_A_RUN, needs=("state_dict", BUILD_RECORD_KEY))
    weights = student_weights(ckpt["state_dict"], use_ema, path)
    problem = mismatch_report(network, weights)
    if problem:
        raise CheckpointError(f"{option}={path}: the run's student does not fit model=: {problem}")
    network.load_state_dict(weights, strict=True)
    return _finished(network, ckpt, path, option)


def _finished(model: nn.Module, ckpt: Mapping, path, option: str) -> nn.Module:
    """``model`` with the run's adapters merged, averaged with the pre-trained weights when the
    run asked for it, blocks folded, in eval mode."""
    pretrained = ckpt.get("pretrained_student")
    if pretrained is not None and not _is_tensor_table(pretrained):
        raise CheckpointError(f"{option}={path}: pretrained_student is not a table of tensors")
    build = ckpt[BUILD_RECORD_KEY] if isinstance(ckpt[BUILD_RECORD_KEY], Mapping) else {}
    average_weight = build.get("average_weight")
    try:
        if average_weight is not None:
            AVERAGE_WEIGHT("average_weight", average_weight)
    except BuildRecordError as err:
        raise CheckpointError(f"{option}={path}: {BUILD_RECORD_KEY}.{err}") from None
    try:
        return deployable(model, pretrained, average_weight).eval()
    except (RuntimeError, ValueError) as err:  # pre-trained tensors of other shapes or keys
        raise CheckpointError(
            f"{option}={path}: pretrained_student does not fit the student: "
            f"{str(err).splitlines()[0]}"
        ) from None


def deployed_architecture(name, args, model: nn.Module) -> Architecture | None:
    """The recorded architecture in its deployed form (re-parameterisable blocks folded)."""
    args = dict(args)
    if "reparameterized" in MODELS[name][1]:
        args["reparameterized"] = True
    args = check_model(name, args)[1]
    return (name, args) if fits(name, args, model.state_dict()) else None


def _is_tensor_table(value: object) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def deployed_architecture_of(build: Mapping, model: nn.Module) -> Architecture | None:
    """The deployed architecture a build record names, None when it names none srdistill can
    rebuild (a user's own network)."""
    try:
        return deployed_architecture(*record_architecture(build), model)
    except (KeyError, BuildRecordError, TypeError, ValueError):
        return None
