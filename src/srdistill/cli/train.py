"""``train.py``: distil a student from a frozen teacher; writes results.json in the run folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from srdistill.cli.builders import build_module, build_trainer, config_hash
from srdistill.cli.common import exit_on_user_error


def _run_dir(cfg: DictConfig) -> Path:
    try:
        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path(cfg.trainer.default_root_dir)


def run(cfg: DictConfig) -> dict:
    """Fit, validate once more, write and return ``results.json``'s content."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.datamodule, train_dataset=instantiate(cfg.data.train))
    module = build_module(cfg)
    trainer = build_trainer(cfg)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    results = {
        "val": metrics,
        "steps": trainer.global_step,
        "config_hash": config_hash(cfg),
        "wall_time_s": round(time.perf_counter() - start, 1),
        "teacher": module.teacher_identity,
    }
    if trainer.is_global_zero:
        path = _run_dir(cfg) / "results.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
    return results


@exit_on_user_error
def main_from_cfg(cfg: DictConfig) -> float:
    """Returns the first validation set's PSNR, the value Hydra sweepers optimise."""
    results = run(cfg)
    return float(results["val"].get(f"val/{cfg.val.sets[0]}/psnr_y", float("nan")))
