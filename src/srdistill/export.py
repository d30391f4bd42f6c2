"""The deployable student of a training run, as a plain state dict in its architecture's keys.

A run checkpoint records how its student was built as plain values (an allowed architecture name
and its arguments, LoRA targets, average weight; see ``srdistill.models.registry``) and, when
averaging, the pre-trained weights. Rebuilding from that record, loading the
trained (EMA) weights, merging the adapters, averaging and folding re-parameterisable blocks gives
the network a plain implementation of the architecture loads with ``strict=True``: for SPAN, the
slim ``eval_conv`` format of the released checkpoints.

That network is written as a plain state dict (``pth``; ``safetensors``, which also names the
architecture in its metadata), a self-contained TorchScript file or an ONNX graph with dynamic
height and width; each written file is loaded back and compared with the PyTorch network on a
real photo before export reports success.
"""

from __future__ import annotations

import io
import math
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from srdistill.lora.merge import deployable
from srdistill.models.checkpoint import (
    CheckpointError,
    mismatch_report,
    read_run_checkpoint,
    student_weights,
)
from srdistill.models.detect import Architecture, fits, to_metadata
from srdistill.models.registry import (
    MODELS,
    RecordError,
    build_from_record,
    check_model,
    number,
    recorded_model,
)
from srdistill.outputs import write_atomic

EXPORT_FORMATS = ("pth", "safetensors", "torchscript", "onnx")
FORMAT_ALIASES = {"slim": "pth"}  # the name of the plain state dict format before there were four
ONNX_OPSET = 18
# a quarter of an 8-bit step: differences below it never change a saved pixel by more than one
TOLERANCE = 1e-3
VERIFY_PHOTO, VERIFY_CROP = "chelsea", (96, 120)  # HR rows, columns: multiples of 2, 3, 4, 8
NOT_A_RUN = "export takes the last.ckpt / best-*.ckpt of a train.py run"
AVERAGE_WEIGHT = number(0.0, 1.0)
Verify = Callable[[Path], None]


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
    return deployed_student_with_architecture(path, use_ema, option)[0]


def deployed_student_with_architecture(
    path: str | Path, use_ema: bool = True, option: str = "ckpt"
) -> tuple[nn.Module, Architecture | None]:
    """The deployed student and the plain architecture its weights fit (None if no registry
    name fits them, e.g. a width no SPAN name has)."""
    ckpt = read_run_checkpoint(path, option, NOT_A_RUN, needs=("state_dict", "student_build"))
    build = ckpt["student_build"]
    weights = student_weights(ckpt["state_dict"], use_ema, path)
    model = rebuild_student(build, weights, path, option)
    pretrained = ckpt.get("pretrained_student")
    if pretrained is not None and not _is_tensor_table(pretrained):
        raise CheckpointError(f"{option}={path}: pretrained_student is not a table of tensors")
    try:
        model = deployable(model, pretrained, build.get("average_weight")).eval()
    except (RuntimeError, ValueError) as err:  # pre-trained tensors of other shapes or keys
        raise CheckpointError(
            f"{option}={path}: pretrained_student does not fit the student: "
            f"{str(err).splitlines()[0]}"
        ) from None
    return model, deployed_architecture(*recorded_model(build), model)


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


def check_tolerance(value) -> float:
    """``tolerance=`` as a finite, non-negative number, or a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(
            f"tolerance={value!r}: give the largest accepted difference from the PyTorch network "
            f"as a number >= 0 (default {TOLERANCE:g}, a quarter of an 8-bit step)"
        )
    return float(value)


def export_format(fmt: str) -> str:
    """The canonical name of an export format (``slim`` is ``pth``), or a one-line error."""
    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format={fmt}: choose one of {', '.join(EXPORT_FORMATS)}")
    return fmt


def write_state_dict(
    model: nn.Module,
    out: str | Path,
    fmt: str = "pth",
    architecture: Architecture | None = None,
    verify: Verify | None = None,
) -> Path:
    """Write ``model``'s weights as a plain tensor dict (``torch.save``) or safetensors; the
    safetensors header also names ``architecture`` (plain strings) when given. ``verify`` checks
    the complete file before it replaces ``out``."""
    fmt = export_format(fmt)
    if fmt not in ("pth", "safetensors"):
        raise ValueError(f"format must be pth or safetensors, got {fmt!r}")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save

        metadata = to_metadata(*architecture) if architecture else None
        return write_atomic(out, lambda f: f.write(save(state, metadata)), "out", verify)
    return write_atomic(out, lambda f: torch.save(state, f), "out", verify)


def write_export(
    model: nn.Module,
    out: str | Path,
    fmt: str,
    architecture: Architecture | None = None,
    verify: Verify | None = None,
) -> Path:
    """Write the deployed ``model`` to ``out`` in ``fmt`` (see ``EXPORT_FORMATS``); ``verify``
    checks the complete file before it replaces ``out``: a failed check leaves ``out`` as it
    was."""
    fmt = export_format(fmt)
    model = model.eval().cpu()
    if fmt in ("pth", "safetensors"):
        return write_state_dict(model, out, fmt, architecture, verify)
    example = torch.rand(1, 3, 24, 20)  # another size than the check image: traced sizes show
    if fmt == "torchscript":
        buffer = io.BytesIO()
        # torch marks TorchScript deprecated; the file still loads without srdistill installed
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.trace(model, example, check_trace=False), buffer)
        return write_atomic(out, lambda f: f.write(buffer.getvalue()), "out", verify)
    return write_atomic(out, lambda f: f.write(_onnx_bytes(model, example)), "out", verify)


def _onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    axes = {0: "batch", 2: "height", 3: "width"}
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(folder) / "model.onnx"
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["lr"],
            output_names=["sr"],
            dynamic_axes={"lr": axes, "sr": axes},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
        return path.read_bytes()


def verification_input(scale: int) -> tuple[torch.Tensor, str]:
    """A real photo's LR crop (made with the project's MATLAB bicubic) and its description."""
    from srdistill.data.bicubic import imresize
    from srdistill.data.images import to_tensor
    from srdistill.data.samples import load_photo

    rows, cols = VERIFY_CROP
    hr = load_photo(VERIFY_PHOTO)[:rows, :cols]
    lr = imresize(np.ascontiguousarray(hr), scale=1.0 / scale)
    return to_tensor(lr).unsqueeze(0), f"{VERIFY_PHOTO} (LR {lr.shape[1]}x{lr.shape[0]})"


def run_exported(path: str | Path, fmt: str, lq: torch.Tensor, architecture=None) -> np.ndarray:
    """The written file's output on ``lq``, run by its format's own runtime."""
    fmt = export_format(fmt)
    if fmt in ("pth", "safetensors"):
        from srdistill.models.from_file import fresh_network

        with torch.no_grad():
            return fresh_network(architecture, path)(lq).numpy()
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.load(str(path), map_location="cpu")(lq).numpy()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"lr": lq.numpy()})[0]


def onnxruntime_available() -> bool:
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None


def verify_export(
    model: nn.Module,
    path: str | Path,
    fmt: str,
    scale: int,
    architecture: Architecture | None = None,
    tolerance: float = TOLERANCE,
    name: str | Path | None = None,
) -> tuple[float, str] | None:
    """The largest absolute difference between the written file and ``model`` on a real photo,
    and that photo's description; None when its runtime is not installed (ONNX without
    onnxruntime). Exceeding ``tolerance`` raises a one-line ``ValueError`` naming the file as
    ``name`` (the destination, when ``path`` is the file before it is moved there)."""
    fmt = export_format(fmt)
    name = name or path
    if fmt == "onnx" and not onnxruntime_available():
        return None
    lq, image = verification_input(scale)
    with torch.no_grad():
        expected = model.eval().cpu()(lq).numpy()
    got = run_exported(path, fmt, lq, architecture)
    if got.shape != expected.shape:
        raise ValueError(
            f"verification failed: {fmt} file {name} gives an output of shape {got.shape} "
            f"instead of {expected.shape} on {image}"
        )
    diff = float(np.abs(got - expected).max())
    if not diff <= tolerance:
        raise ValueError(
            f"verification failed: {fmt} file {name} differs from the PyTorch network by "
            f"{diff:.3g} (tolerance {tolerance:g}) on {image}; nothing was written"
        )
    return diff, image
