"""``efficiency.py``: parameters, MACs/FLOPs, latency and peak memory of one model."""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from srdistill.cli.common import check_scale, exit_on_user_error, model_choice
from srdistill.eval.cost import efficiency_report
from srdistill.outputs import ensure_writable_file, write_json


def run(cfg: DictConfig) -> dict:
    check_scale(cfg.scale)
    if cfg.out:
        ensure_writable_file(cfg.out, "out")
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    model = instantiate(cfg.model)
    latency_hw = tuple(cfg.latency_hw) if cfg.latency_hw else None
    report = efficiency_report(model, tuple(cfg.input_hw), latency_hw, cfg.device, cfg.repeats)
    result = {
        "model": model_choice(),
        "scale": cfg.scale,
        "threads": torch.get_num_threads(),
        **report.as_dict(),
    }
    h, w = report.input_hw
    print(
        f"{result['model']} x{cfg.scale}: {report.params:,} params; at 3x{h}x{w}: "
        f"{report.macs_g:.2f} G MACs (papers' 'FLOPs'), {report.flops_g:.2f} G FLOPs"
    )
    if report.latency_ms is not None:
        memory = f"{report.peak_memory_mb:.1f} MB" if report.peak_memory_mb is not None else "n/a"
        print(
            f"latency at 3x{latency_hw[0]}x{latency_hw[1]} on {cfg.device} "
            f"({result['threads']} threads): {report.latency_ms:.1f} ms; peak memory {memory}"
        )
    if cfg.out:
        write_json(cfg.out, result, "out")
    return result


@exit_on_user_error
def main_from_cfg(cfg: DictConfig) -> dict:
    return run(cfg)
