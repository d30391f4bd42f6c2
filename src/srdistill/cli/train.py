"""``train.py``: distil a student from a frozen teacher; writes results.json in the run folder."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from srdistill.cli.builders import build_module, build_trainer, config_hash
from srdistill.cli.common import exit_on_user_error
from srdistill.data.samples import materialize_samples
from srdistill.eval.benchmark import evaluate_benchmarks, format_table
from srdistill.models.backbones.bicubic import Bicubic


def _run_dir(cfg: DictConfig) -> Path:
    try:
        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path(cfg.trainer.default_root_dir)


def final_validation(trainer, module, datamodule) -> dict[str, float]:
    """Validation metrics of the final weights (reusing a validation run at the last step)."""
    if module.last_validated_step != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}


def comparison_table(module, datamodule, scale: int) -> tuple[dict, str]:
    """Bicubic vs teacher vs student on the validation sets, and the printed table."""
    root = datamodule.val_root if datamodule.val_root is not None else materialize_samples()
    models = {
        "bicubic": Bicubic(scale),
        "teacher": module.teacher,
        "student": module.export_student(),
    }
    results, lines = {}, []
    for name, model in models.items():
        if model is None:
            continue
        results[name] = evaluate_benchmarks(model.cpu().eval(), root, datamodule.val_sets, scale)
        lines.append(format_table(results[name], name))
    return results, "\n".join(lines)


def _quiet_expected_warnings() -> None:
    # The frozen teacher sits in eval mode on purpose; small sample sets have short epochs;
    # torchdata's loader calls an API torch deprecated. None of these needs the user's attention.
    for message in (
        r".*module\(s\) in eval mode.*",
        r".*smaller than the logging interval.*",
        r".*set_vital.*",
    ):
        warnings.filterwarnings("ignore", message=message)


def run(cfg: DictConfig) -> dict:
    """Fit, validate once more, write and return ``results.json``'s content."""
    _quiet_expected_warnings()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.datamodule, train_dataset=instantiate(cfg.data.train))
    module = build_module(cfg)
    trainer = build_trainer(cfg)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    metrics = final_validation(trainer, module, datamodule)
    results = {
        "val": metrics,
        "steps": trainer.global_step,
        "config_hash": config_hash(cfg),
        "wall_time_s": round(time.perf_counter() - start, 1),
        "teacher": module.teacher_identity,
    }
    if cfg.final_table and trainer.is_global_zero:
        results["comparison"], table = comparison_table(module, datamodule, cfg.scale)
        print(table)
    if trainer.is_global_zero:
        path = _run_dir(cfg) / "results.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
    return results


@exit_on_user_error
def main_from_cfg(cfg: DictConfig) -> float:
    """Returns the first validation set's PSNR, the value Hydra sweepers optimise."""
    results = run(cfg)
    return float(results["val"].get(f"val/{cfg.val.sets[0]}/psnr_y", float("nan")))
