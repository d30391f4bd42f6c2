"""``export.py``: a run checkpoint or a weights file -> the deployable student, in a deployment
format, verified against the PyTorch network before success is reported.

A student of srdistill's own models is rebuilt from the plain values its file records. A student
of the user's own code (a ``conf/model`` config whose ``_target_`` is outside srdistill, found
through ``hydra.searchpath``) is built from that config, named by ``model=`` on the command line:
a file never names code, so such a run is refused without it."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from omegaconf import DictConfig

from srdistill.cli.common import check_finite, check_scale, exit_on_user_error, model_choice
from srdistill.cli.own_model import (
    check_importable,
    is_own_model,
    own_network,
    refuse_run_of_own_model,
)
from srdistill.eval.cost import count_parameters
from srdistill.export_formats import TOLERANCE, check_tolerance, export_checked, format_for
from srdistill.models.checkpoint import CheckpointError
from srdistill.models.from_file import check_model_name, network_from_file
from srdistill.outputs import ensure_writable_file, remove_stale_temporaries


def model_name(cfg: DictConfig) -> str | None:
    """The ``model=`` choice (a conf/model name), or None when not given."""
    return model_choice() if cfg.get("model") is not None else None


def check_options(cfg: DictConfig) -> str:
    """Everything the options alone can tell, before reading any file; returns the format."""
    if not cfg.ckpt or not cfg.out:
        raise ValueError("export needs ckpt=<run checkpoint or weights file> and out=<file>")
    fmt = format_for(cfg.get("format"), cfg.out)
    if is_own_model(cfg):
        check_importable(cfg)
    else:
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
    model, scale, arch, reload = _network(cfg)
    check_finite(model, f"the network of ckpt={cfg.ckpt}")  # a diverged run is never shipped
    tolerance = float(cfg.get("tolerance", TOLERANCE))
    remove_stale_temporaries(cfg.out)  # what an export killed while writing left beside it
    # checked before the file replaces cfg.out: a failed check leaves it as it was
    path, checked = export_checked(model, cfg.out, fmt, scale, arch, tolerance, reload)
    return _report(model, path, fmt, checked)


def _network(cfg: DictConfig):
    """The network to export, its scale, its srdistill architecture (None for the user's own
    code, whose safetensors then name none) and, for the user's own code, how a written state
    dict is loaded back (srdistill's architectures are rebuilt from their name)."""
    if is_own_model(cfg):
        model, scale, reload = own_network(cfg)
        return model, scale, None, reload
    try:
        model, arch = network_from_file(
            cfg.ckpt, model_name(cfg), cfg.get("scale"), option="ckpt", use_ema=cfg.use_ema
        )
    except CheckpointError:
        if model_name(cfg) is None:
            refuse_run_of_own_model(cfg.ckpt)  # the clearer message, when that is the cause
        raise
    scale = arch[1]["scale"] if arch else int(getattr(model, "scale", 4))
    return model, scale, arch, None


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
