"""``export.py``: a run checkpoint -> the deployable student's plain weights file."""

from __future__ import annotations

from omegaconf import DictConfig

from srdistill.cli.common import check_finite, exit_on_user_error
from srdistill.eval.efficiency import count_parameters
from srdistill.export import EXPORT_FORMATS, deployed_student, write_state_dict
from srdistill.outputs import ensure_writable_file


def run(cfg: DictConfig) -> dict:
    if cfg.format not in EXPORT_FORMATS:  # before reading anything
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {cfg.format!r}")
    if not cfg.ckpt or not cfg.out:
        raise ValueError("export needs ckpt=<run checkpoint> and out=<file>")
    ensure_writable_file(cfg.out, "out")
    model = deployed_student(cfg.ckpt, use_ema=cfg.use_ema)
    check_finite(model, f"the student of ckpt={cfg.ckpt}")  # a diverged run is never shipped
    path = write_state_dict(model, cfg.out, cfg.format)
    result = {
        "out": str(path),
        "params": count_parameters(model),
        "tensors": len(model.state_dict()),
    }
    print(f"wrote {path}: {result['params']:,} parameters in {result['tensors']} tensors")
    return result


@exit_on_user_error
def main_from_cfg(cfg: DictConfig) -> dict:
    return run(cfg)
