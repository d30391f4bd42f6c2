"""The deployable student of a training run, as a plain state dict in its architecture's keys.

A run checkpoint records how its student was built as plain values (an allowed architecture name
and its arguments, LoRA targets, average weight; see ``srdistill.models.registry``) and, when
averaging, the pre-trained weights. Rebuilding from that record, loading the
trained (EMA) weights, merging the adapters, averaging and folding re-parameterisable blocks gives
the network a plain implementation of the architecture loads with ``strict=True``: for SPAN, the
slim ``eval_conv`` format of the released checkpoints.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from srdistill.lora.merge import deployable
from srdistill.models.checkpoint import (
    CheckpointError,
    mismatch_report,
    read_run_checkpoint,
    student_weights,
)
from srdistill.models.registry import RecordError, build_from_record, number, recorded_model
from srdistill.outputs import write_atomic

EXPORT_FORMATS = ("slim", "safetensors")
NOT_A_RUN = "export takes the last.ckpt / best-*.ckpt of a train.py run"
AVERAGE_WEIGHT = number(0.0, 1.0)


def rebuild_student(
    build: object, weights: Mapping[str, torch.Tensor], path: str | Path, option: str = "ckpt"
) -> nn.Module:
    """The recorded architecture and adapters, from plain allowed values only (never code),
    holding ``weights``."""
    where = f"{option}={path}: student_build"
    if not isinstance(build, Mapping):
        raise CheckpointError(f"{where} is not a table of plain values")
    if build.get("unavailable"):
        raise CheckpointError(
            f"{where} says the student cannot be rebuilt ({str(build['unavailable'])[:200]}); "
            "export rebuilds only srdistill's own models (conf/model), load the run's "
            "student.* weights into your architecture yourself"
        )
    try:
        model, model_args = recorded_model(build)
        if build.get("average_weight") is not None:
            AVERAGE_WEIGHT("average_weight", build["average_weight"])
        _check_sizes_on_meta(model, model_args, build.get("lora"), weights, where)
        network = build_from_record(model, model_args, build.get("lora"))
    except RecordError as err:
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
    ckpt = read_run_checkpoint(path, option, NOT_A_RUN, needs=("state_dict", "student_build"))
    build = ckpt["student_build"]
    weights = student_weights(ckpt["state_dict"], use_ema, path)
    model = rebuild_student(build, weights, path, option)
    pretrained = ckpt.get("pretrained_student")
    if pretrained is not None and not _is_tensor_table(pretrained):
        raise CheckpointError(f"{option}={path}: pretrained_student is not a table of tensors")
    try:
        return deployable(model, pretrained, build.get("average_weight")).eval()
    except (RuntimeError, ValueError) as err:  # pre-trained tensors of other shapes or keys
        raise CheckpointError(
            f"{option}={path}: pretrained_student does not fit the student: "
            f"{str(err).splitlines()[0]}"
        ) from None


def _is_tensor_table(value: object) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def write_state_dict(model: nn.Module, out: str | Path, fmt: str = "slim") -> Path:
    """Write ``model``'s weights as a plain tensor dict (``torch.save``) or safetensors."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save

        return write_atomic(out, lambda f: f.write(save(state)), "out")
    return write_atomic(out, lambda f: torch.save(state, f), "out")
