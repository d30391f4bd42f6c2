"""Training one arm of a run: its stages, each a Lightning fit, then a last validation.

A staged recipe (``stages:``, e.g. DSCLoRA's growing patches) is one config per stage; each later
stage resumes the previous one's end checkpoint, and a resumed run skips finished stages.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from srdistill.cli.builders import build_loggers, build_trainer, config_hash
from srdistill.environment import run_environment
from srdistill.eval.cost import count_parameters, deployed_flops_g
from srdistill.models.checkpoint import CheckpointError, read_run_checkpoint
from srdistill.training import grad_share, wandb_run

log = logging.getLogger(__name__)


def run_dir(cfg: DictConfig) -> Path:
    return Path(cfg.run_dir)


def quiet_expected_warnings() -> None:
    # The frozen teacher sits in eval mode on purpose; small sample sets have short epochs;
    # torchdata's loader calls an API torch deprecated; the module's batch hook (perf.
    # channels_last) is meant to be the one used beside the data module. None of these needs the
    # user's attention.
    for message in (
        r".*module\(s\) in eval mode.*",
        r".*overridden `on_after_batch_transfer`.*",
        r".*smaller than the logging interval.*",
        r".*set_vital.*",
    ):
        warnings.filterwarnings("ignore", message=message)


def stage_configs(cfg: DictConfig) -> list[DictConfig]:
    """One config per training stage, each with its ``trainer.max_steps`` and patch size.

    ``trainer.max_steps`` caps the stages (a 20-step check of a staged recipe runs 20 steps), and
    the log says which stages were shortened or dropped.
    """
    if not cfg.get("stages"):
        return [cfg]
    stages, previous, cap = [], 0, int(cfg.trainer.max_steps)
    for i, stage in enumerate(cfg.stages):
        until, patch = int(stage.until_step), int(stage.lr_patch_size)
        if until <= previous or patch < 1:
            raise ValueError(
                f"stages[{i}]: until_step must increase ({until} after {previous}) and "
                f"lr_patch_size be positive ({patch})"
            )
        if previous >= cap:
            log.warning("trainer.max_steps=%d: stage %d (until %d) is skipped", cap, i + 1, until)
            break
        if until > cap:
            log.warning("trainer.max_steps=%d caps stage %d (until step %d)", cap, i + 1, until)
        stage_cfg = copy.deepcopy(cfg)
        stage_cfg.trainer.max_steps, stage_cfg.data.lr_patch_size = min(until, cap), patch
        stages.append(stage_cfg)
        previous = until
    return stages


def _checkpoint_step(path: str | None, module) -> int:
    """The step a resumed run starts from; refuses files that are not plain tensors/containers,
    weights files that are not a run's checkpoint, and a change of ``module.balance``."""
    if not path:
        return 0
    instead = f"to start from its weights use student.ckpt={path}"
    checkpoint = read_run_checkpoint(path, "ckpt_path", instead)
    module.balance.check_resume(checkpoint)
    step = checkpoint["global_step"]
    if type(step) is not int or step < 0:
        raise CheckpointError(f"ckpt_path={path}: global_step is not a step count ({step!r:.40})")
    return step


def fit_stages(cfg: DictConfig, stages: list[DictConfig], module, first_dataset) -> tuple:
    """Train through every stage; each later stage resumes the previous one's end checkpoint
    (optimisers, schedulers, EMA and step carry over). A resumed run skips finished stages."""
    loggers, ckpt_path = build_loggers(cfg), cfg.ckpt_path
    for logger in loggers or []:
        logger.log_hyperparams({"tags": run_tags(cfg)})
    wandb_run.log_run_config(
        loggers, OmegaConf.to_container(cfg, resolve=True), wandb_run.code_version()
    )
    done = _checkpoint_step(ckpt_path, module)
    for i, stage_cfg in enumerate(stages):
        if done >= stage_cfg.trainer.max_steps and i < len(stages) - 1:
            continue
        train_dataset = first_dataset if i == 0 else instantiate(stage_cfg.data.train)
        datamodule = instantiate(stage_cfg.datamodule, train_dataset=train_dataset)
        trainer = build_trainer(stage_cfg, loggers, teacher_cache_callbacks(cfg, module.loss))
        # run checkpoints hold tensors and plain containers only: never unpickle code
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        if i < len(stages) - 1:
            ckpt_path = str(run_dir(cfg) / "checkpoints" / f"stage{i + 1}-end.ckpt")
            trainer.save_checkpoint(ckpt_path, weights_only=False)  # optimisers too
    return trainer, datamodule


def teacher_cache_callbacks(cfg: DictConfig, loss) -> list:
    """The teacher-output cache builder when ``teacher.cache`` is on and the loss reads only
    the teacher's output; [] otherwise (the teacher then runs online)."""
    teacher = cfg.get("teacher") or {}
    if not teacher.get("cache") or not loss.reads_teacher_outputs_only:
        return []
    return [instantiate(teacher.cache_builder)]


def final_validation(trainer, module, datamodule) -> dict[str, float]:
    """Validation metrics of the final weights (reusing a validation run at the last step):
    ``val/`` the deployed student, ``val_ema/`` or ``val_trained/`` the network as trained
    when they differ."""
    if module.validation.last_step != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = trainer.callback_metrics.items()
    return {k: float(v) for k, v in metrics if k.startswith(("val/", "val_ema/", "val_trained/"))}


def run_tags(cfg: DictConfig) -> dict:
    """What the run is (table, backbone, method, scale, seed): conf/train.yaml ``tags``."""
    tags = cfg.get("tags")
    return OmegaConf.to_container(tags, resolve=True) if tags is not None else {}


def train_arm(cfg: DictConfig, module, first_dataset) -> tuple[dict, object, object]:
    """Train one network from the seed up, validate it once more; its results, trainer, data."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    start = time.perf_counter()
    trainer, datamodule = fit_stages(cfg, stage_configs(cfg), module, first_dataset)
    results = {
        "val": final_validation(trainer, module, datamodule),
        "steps": trainer.global_step,
        "config_hash": config_hash(cfg),
        "wall_time_s": round(time.perf_counter() - start, 1),
        # the thread count changes floating-point sums, hence the trained weights: arms of one
        # comparison should share it (docs/runs/README.md)
        "torch_threads": torch.get_num_threads(),
        "environment": run_environment(),
        "teacher": module.teacher_identity,
        "tags": run_tags(cfg),
        "code": wandb_run.code_version(),
    }
    # the deployed network's size and cost: srdistill-report's PSNR-vs-parameters and -FLOPs
    # figures; flops_g in the papers' convention, as in report/paper_numbers.json
    student = module.export_student()
    results["params"] = count_parameters(student)
    results["flops_g"] = deployed_flops_g(student)
    # the weights each term trained at (after balancing, when on): what the report prints
    results["weights"] = dict(module.loss.weights)
    if module.balance.targets:
        results["balance"] = module.balance.summary()
        if module.balance.calibrating:
            log.warning(
                "module.balance: the run ended before %d measured steps; its balanced terms "
                "(%s) trained at weight 0",
                module.balance.steps,
                ", ".join(module.balance.targets),
            )
    if module.hparams.get("grad_share_every"):
        every = module.hparams.grad_share_every
        results["grad_share"] = grad_share.summarize(every, module.grad_share.history)
    return results, trainer, datamodule
