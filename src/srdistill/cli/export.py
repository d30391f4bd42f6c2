"""``export.py``: a run checkpoint or a weights file -> the deployable student, in a deployment
format, verified against the PyTorch network before success is reported.

The network is read as every entry point reads it (``srdistill.models.load``): a student of
srdistill's own models is rebuilt from the plain values its file records; an architecture
srdistill does not implement is read through spandrel and written as that architecture's own
state dict (``pth``, ``safetensors``: what spandrel reads back), TorchScript or ONNX. A student
of the user's own code (a ``conf/model`` config whose ``_target_`` is outside srdistill, found
through ``hydra.searchpath``) is built from that config, named by ``model=`` on the command line:
a file never names code, so such a run is refused without it."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from omegaconf import DictConfig
from torch import nn

from srdistill.cli.common import USER_ERRORS, check_scale, exit_on_user_error, model_choice
from srdistill.cli.own_model import (
    check_importable,
    is_own_model,
    own_network,
    refuse_run_of_own_model,
)
from srdistill.eval.cost import count_parameters
from srdistill.export_formats import (
    STATE_DICT_FORMATS,
    TOLERANCE,
    Reload,
    check_tolerance,
    export_checked,
    format_for,
)
from srdistill.models.checkpoint import CheckpointError
from srdistill.models.load import LoadedNetwork, check_model_name, load_network
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
    loaded, reload = _network(cfg)  # a diverged run is refused there
    print(f"network: {loaded.description}")
    tolerance = float(cfg.get("tolerance", TOLERANCE))
    remove_stale_temporaries(cfg.out)  # what an export killed while writing left beside it
    # checked before the file replaces cfg.out: a failed check leaves it as it was
    path, checked = _export(loaded, cfg.out, fmt, tolerance, reload)
    return _report(loaded.network, path, fmt, checked)


def _network(cfg: DictConfig) -> tuple[LoadedNetwork, Reload | None]:
    """The network to export and, for one that is none of srdistill's architectures (whose
    safetensors then name none), how a written state dict is loaded back (srdistill's
    architectures are rebuilt from their name)."""
    if is_own_model(cfg):
        model, scale, reload = own_network(cfg)
        name = model_choice()
        return LoadedNetwork(model, scale, name, None, f"{name} x{scale} (your own code)"), reload
    try:
        loaded = load_network(
            cfg.ckpt,
            model_name(cfg),
            cfg.get("scale"),
            use_ema=cfg.use_ema,
            sha256=cfg.get("sha256"),
        )
    except CheckpointError:
        if model_name(cfg) is None and Path(cfg.ckpt).is_file():
            refuse_run_of_own_model(cfg.ckpt)  # the clearer message, when that is the cause
        raise
    if loaded.architecture is not None:
        return loaded, None

    def reload(written: Path) -> nn.Module:
        """The written file read back as a user would: its architecture told by the loader."""
        return load_network(written, scale=loaded.scale, option="out").network

    return loaded, reload


def _export(loaded: LoadedNetwork, out, fmt: str, tolerance: float, reload: Reload | None):
    """``export_checked``; a network srdistill does not implement that the tracer, the ONNX
    exporter or its runtime cannot handle is one line naming the formats that hold it."""
    args = (loaded.network, out, fmt, loaded.scale, loaded.architecture, tolerance, reload)
    try:
        return export_checked(*args)
    except USER_ERRORS:
        raise
    except Exception as err:
        if loaded.architecture is not None or fmt in STATE_DICT_FORMATS:
            raise  # srdistill's own architectures export in every format: a bug, with its trace
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"format={fmt} cannot hold {loaded.description} ({reason}); export it with "
            f"format=pth or format=safetensors (its own state dict, read back the same way)"
        ) from None


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
