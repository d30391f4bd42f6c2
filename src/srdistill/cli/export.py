"""``export.py``: a run checkpoint or a weights file -> the deployable student, in a deployment
format, verified against the PyTorch network before success is reported."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from omegaconf import DictConfig

from srdistill.cli.common import check_finite, check_scale, exit_on_user_error, model_choice
from srdistill.eval.efficiency import count_parameters
from srdistill.export import (
    TOLERANCE,
    check_tolerance,
    export_format,
    verify_export,
    write_export,
)
from srdistill.models.from_file import check_model_name, network_from_file
from srdistill.outputs import ensure_writable_file, remove_stale_temporaries


def model_name(cfg: DictConfig) -> str | None:
    """The ``model=`` choice (a conf/model name), or None when not given."""
    return model_choice() if cfg.get("model") is not None else None


def check_options(cfg: DictConfig) -> str:
    """Everything the options alone can tell, before reading any file; returns the format."""
    fmt = export_format(str(cfg.format))
    if not cfg.ckpt or not cfg.out:
        raise ValueError("export needs ckpt=<run checkpoint or weights file> and out=<file>")
    check_model_name(model_name(cfg))
    if cfg.get("scale") is not None:
        check_scale(cfg.scale)
    if fmt == "onnx" and find_spec("onnx") is None:
        raise ValueError("format=onnx needs the onnx package: pip install onnx onnxruntime")
    check_tolerance(cfg.get("tolerance", TOLERANCE))
    ensure_writable_file(cfg.out, "out", inputs=[cfg.ckpt])
    return fmt


def run(cfg: DictConfig) -> dict:
    fmt = check_options(cfg)
    model, arch = network_from_file(
        cfg.ckpt, model_name(cfg), cfg.get("scale"), option="ckpt", use_ema=cfg.use_ema
    )
    check_finite(model, f"the network of ckpt={cfg.ckpt}")  # a diverged run is never shipped
    scale = arch[1]["scale"] if arch else int(getattr(model, "scale", 4))
    tolerance, checked = float(cfg.get("tolerance", TOLERANCE)), []

    def verify(written: Path) -> None:  # before the file replaces cfg.out
        checked.append(verify_export(model, written, fmt, scale, arch, tolerance, cfg.out))

    remove_stale_temporaries(cfg.out)  # what an export killed while writing left beside it
    path = write_export(model, cfg.out, fmt, arch, verify)
    return _report(model, path, fmt, checked[0])


def _report(model, path: Path, fmt: str, checked: tuple[float, str] | None) -> dict:
    result = {
        "out": str(path),
        "format": fmt,
        "params": count_parameters(model),
        "tensors": len(model.state_dict()),
    }
    print(f"wrote {path}: {result['params']:,} parameters in {result['tensors']} tensors")
    if checked is None:
        print("onnxruntime not installed: ONNX file not verified")
    else:
        result["max_abs_difference"], image = checked
        print(f"verified {fmt}: max abs difference {checked[0]:.3g} on {image}")
    return result


@exit_on_user_error
def main_from_cfg(cfg: DictConfig) -> dict:
    return run(cfg)
