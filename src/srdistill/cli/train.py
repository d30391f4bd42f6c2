"""``train.py``: distil a student from a frozen teacher; writes results.json in the run folder."""

from __future__ import annotations

import copy
import json
import time
import warnings
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from srdistill.cli.builders import build_loggers, build_module, build_trainer, config_hash
from srdistill.cli.common import exit_on_user_error
from srdistill.data.samples import materialize_samples
from srdistill.eval.benchmark import evaluate_benchmarks, format_table
from srdistill.models.backbones.bicubic import Bicubic
from srdistill.models.checkpoint import CheckpointError, read_run_checkpoint


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


def comparison_table(
    module, datamodule, scale: int, names=("bicubic", "teacher", "student")
) -> tuple[dict, str]:
    """Bicubic vs teacher vs student on the validation sets, and the printed table.

    The student is the deployed network (``export_student``: adapters merged, averaged)."""
    root = datamodule.val_root if datamodule.val_root is not None else materialize_samples()
    builders = {
        "bicubic": lambda: Bicubic(scale),
        "teacher": lambda: module.teacher,
        "student": module.export_student,
    }
    unknown = sorted(set(names) - set(builders))
    if unknown:
        raise ValueError(f"final_table_models: unknown {unknown}; choose from {list(builders)}")
    results, lines = {}, []
    for name in names:
        model = builders[name]()
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


def stage_configs(cfg: DictConfig) -> list[DictConfig]:
    """One config per training stage, each with its ``trainer.max_steps`` and patch size."""
    if not cfg.get("stages"):
        return [cfg]
    stages, previous = [], 0
    for i, stage in enumerate(cfg.stages):
        until, patch = int(stage.until_step), int(stage.lr_patch_size)
        if until <= previous or patch < 1:
            raise ValueError(
                f"stages[{i}]: until_step must increase ({until} after {previous}) and "
                f"lr_patch_size be positive ({patch})"
            )
        stage_cfg = copy.deepcopy(cfg)
        stage_cfg.trainer.max_steps, stage_cfg.data.lr_patch_size = until, patch
        stages.append(stage_cfg)
        previous = until
    return stages


def _checkpoint_step(path: str | None) -> int:
    """The step a resumed run starts from; refuses files that are not plain tensors/containers
    and weights files that are not a run's checkpoint."""
    if not path:
        return 0
    instead = f"to start from its weights use student.ckpt={path}"
    step = read_run_checkpoint(path, "ckpt_path", instead)["global_step"]
    if type(step) is not int or step < 0:
        raise CheckpointError(f"ckpt_path={path}: global_step is not a step count ({step!r:.40})")
    return step


def fit_stages(cfg: DictConfig, stages: list[DictConfig], module, first_dataset) -> tuple:
    """Train through every stage; each later stage resumes the previous one's end checkpoint
    (optimisers, schedulers, EMA and step carry over). A resumed run skips finished stages."""
    loggers, ckpt_path = build_loggers(cfg), cfg.ckpt_path
    done = _checkpoint_step(ckpt_path)
    for i, stage_cfg in enumerate(stages):
        if done >= stage_cfg.trainer.max_steps and i < len(stages) - 1:
            continue
        train_dataset = first_dataset if i == 0 else instantiate(stage_cfg.data.train)
        datamodule = instantiate(stage_cfg.datamodule, train_dataset=train_dataset)
        trainer = build_trainer(stage_cfg, loggers)
        # run checkpoints hold tensors and plain containers only: never unpickle code
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        if i < len(stages) - 1:
            ckpt_path = str(_run_dir(cfg) / "checkpoints" / f"stage{i + 1}-end.ckpt")
            trainer.save_checkpoint(ckpt_path)
    return trainer, datamodule


def run(cfg: DictConfig) -> dict:
    """Fit, validate once more, write and return ``results.json``'s content."""
    _quiet_expected_warnings()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    # the data is checked before any model is built or weights are read
    stages = stage_configs(cfg)
    first_dataset = instantiate(stages[0].data.train)
    module = build_module(cfg)
    start = time.perf_counter()
    trainer, datamodule = fit_stages(cfg, stages, module, first_dataset)
    metrics = final_validation(trainer, module, datamodule)
    results = {
        "val": metrics,
        "steps": trainer.global_step,
        "config_hash": config_hash(cfg),
        "wall_time_s": round(time.perf_counter() - start, 1),
        "teacher": module.teacher_identity,
    }
    if cfg.final_table and trainer.is_global_zero:
        names = tuple(cfg.get("final_table_models") or ("bicubic", "teacher", "student"))
        results["comparison"], table = comparison_table(module, datamodule, cfg.scale, names)
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
