"""Writing the deployed network in a deployment format, and checking what was written.

The network (read by ``srdistill.models.load``: a run's deployed student, a weights file, a
checkpoint spandrel recognises) is written as a plain state dict (``pth``; ``safetensors``,
which also names srdistill's architectures in its metadata), a self-contained
TorchScript file or an ONNX graph with dynamic height and width; each written file is loaded back
and compared with the PyTorch network on a real photo before export reports success.
"""

from __future__ import annotations

import io
import math
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from srdistill.models.detect import Architecture, to_metadata
from srdistill.models.from_file import fresh_network
from srdistill.models.spandrel_net import SpandrelNetwork
from srdistill.outputs import write_atomic

EXPORT_FORMATS = ("pth", "safetensors", "torchscript", "onnx")
STATE_DICT_FORMATS = ("pth", "safetensors")
FORMAT_ALIASES = {"slim": "pth"}  # the name of the plain state dict format before there were four
ONNX_OPSET = 18
# a quarter of an 8-bit step: differences below it never change a saved pixel by more than one
TOLERANCE = 1e-3
VERIFY_PHOTO, VERIFY_CROP = "chelsea", (96, 120)  # HR rows, columns: multiples of 2, 3, 4, 8
Verify = Callable[[Path], None]
Reload = Callable[[Path], nn.Module]  # a written state-dict file -> a network holding it
# file name endings that say a format, for out= without format=
FORMAT_OF_SUFFIX = {".pth": "pth", ".safetensors": "safetensors", ".onnx": "onnx"}


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


def format_for(fmt: str | None, out: str | Path) -> str:
    """``format=`` as given, else the one ``out=``'s ending says (``pth`` when it says none);
    a format that contradicts the ending is a one-line error (a safetensors reader cannot read
    a pickle named ``.safetensors``)."""
    name = Path(str(out)).name.lower()  # ".onnx" alone is a name whose ending says onnx
    ending = next((e for e in FORMAT_OF_SUFFIX if name.endswith(e)), None)
    implied = FORMAT_OF_SUFFIX.get(ending)
    if fmt is None:
        return implied or "pth"
    given, fmt = fmt, export_format(str(fmt))
    if implied is not None and implied != fmt:
        raise ValueError(
            f"format={given} but out={out} ends in {ending}; leave out format= "
            f"(the ending decides: {implied}) or give an out= ending that fits {fmt}"
        )
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
    if fmt not in STATE_DICT_FORMATS:
        raise ValueError(f"format must be pth or safetensors, got {fmt!r}")
    # a network read through spandrel: its architecture's own keys (``body.0.weight``), the ones
    # spandrel and the architecture's project read back, not the wrapper's (``model.body.0...``)
    weights = model.model if isinstance(model, SpandrelNetwork) else model
    state = {k: v.detach().contiguous().cpu() for k, v in weights.state_dict().items()}
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
    if fmt in STATE_DICT_FORMATS:
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
    from srdistill.data.images import to_tensor
    from srdistill.data.matlab_bicubic import imresize
    from srdistill.data.samples import load_photo

    rows, cols = VERIFY_CROP
    hr = load_photo(VERIFY_PHOTO)[:rows, :cols]
    lr = imresize(np.ascontiguousarray(hr), scale=1.0 / scale)
    return to_tensor(lr).unsqueeze(0), f"{VERIFY_PHOTO} (LR {lr.shape[1]}x{lr.shape[0]})"


def run_exported(
    path: str | Path, fmt: str, lq: torch.Tensor, architecture=None, reload: Reload | None = None
) -> np.ndarray:
    """The written file's output on ``lq``, run by its format's own runtime; a state dict is
    loaded into a fresh ``architecture`` network, or into ``reload(path)``'s for a network
    srdistill cannot build (the user's own code)."""
    fmt = export_format(fmt)
    if fmt in STATE_DICT_FORMATS:
        network = reload(Path(path)) if reload else fresh_network(architecture, path)
        with torch.no_grad():
            return network.eval()(lq).numpy()
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
    reload: Reload | None = None,
) -> tuple[float, str] | None:
    """The largest absolute difference between the written file and ``model`` on a real photo,
    and that photo's description; None when its runtime is not installed (ONNX without
    onnxruntime). Exceeding ``tolerance`` raises a one-line ``ValueError`` naming the file as
    ``name`` (the destination, when ``path`` is the file before it is moved there); ``reload``
    as for ``run_exported``."""
    fmt = export_format(fmt)
    name = name or path
    if fmt == "onnx" and not onnxruntime_available():
        return None
    lq, image = verification_input(scale)
    with torch.no_grad():
        expected = model.eval().cpu()(lq).numpy()
    got = run_exported(path, fmt, lq, architecture, reload=reload)
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


def export_checked(
    model: nn.Module,
    out: str | Path,
    fmt: str,
    scale: int,
    architecture: Architecture | None = None,
    tolerance: float = TOLERANCE,
    reload: Reload | None = None,
) -> tuple[Path, tuple[float, str] | None]:
    """Write ``model`` to ``out`` in ``fmt`` and check the complete file against it before it
    replaces ``out`` (``verify_export``); the path and the check's difference and photo (None:
    an ONNX file without onnxruntime to run it)."""
    checked = []

    def verify(written: Path) -> None:
        checked.append(
            verify_export(model, written, fmt, scale, architecture, tolerance, out, reload)
        )

    path = write_export(model, out, fmt, architecture, verify)
    return path, checked[0]
