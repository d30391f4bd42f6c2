"""``train.py``'s checks before any data is read or model built: every option, input file and
output place, and what the loss needs of the batch and the teacher."""

from __future__ import annotations

import logging

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from srdistill.cli.builders import build_loss
from srdistill.cli.common import (
    check_flags,
    check_input_files,
    check_required,
    check_scale,
    model_choice,
)
from srdistill.cli.stages import run_dir, stage_configs, teacher_cache_callbacks
from srdistill.counts import check_count
from srdistill.losses.combine import WeightedLoss
from srdistill.outputs import ensure_writable_dir
from srdistill.training import balance, grad_share, perf, wandb_run
from srdistill.training.text_progress import PROGRESS_HINT

log = logging.getLogger(__name__)


def check_accelerator(cfg: DictConfig) -> None:
    """A GPU trainer on a machine without one: say which option to change, before any work."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"trainer={model_choice('trainer')} uses accelerator={accelerator} but no CUDA GPU "
            "is available here; add trainer=cpu (or trainer.accelerator=auto)"
        )


def check_max_steps(cfg: DictConfig) -> None:
    """trainer.max_steps as Lightning takes it (a count, or -1: no limit), said in one line."""
    steps = cfg.trainer.get("max_steps", -1)
    if steps != -1:
        check_count("trainer.max_steps", steps, minimum=0, hint="or -1: no limit")


def check_callbacks(cfg: DictConfig) -> None:
    """The callbacks' options (sample strip sizes, checkpoint intervals) and the progress-line
    interval, before any data is read: a callback's constructor checks its options and reads
    nothing, so building each once here costs nothing."""
    for callback in (cfg.get("callbacks") or {}).values():
        if callback is not None:
            instantiate(callback)
    every = cfg.get("progress_every_n_steps")
    if every is not None:
        check_count("progress_every_n_steps", every, hint=PROGRESS_HINT)


def check_outputs(cfg: DictConfig) -> None:
    """The run folder and every checkpoint folder are writable, before any data is read."""
    ensure_writable_dir(run_dir(cfg), "hydra.run.dir")
    for name, callback in (cfg.get("callbacks") or {}).items():
        if callback is not None and callback.get("dirpath"):
            ensure_writable_dir(callback.dirpath, f"callbacks.{name}.dirpath")


def check_batch_fits_loss(cfg: DictConfig, stages: list[DictConfig], loss) -> None:
    """Batch and patch sizes the loss terms need (image InfoNCE: 2 images; patch windows)."""
    if cfg.batch_size < loss.min_batch_size:
        raise ValueError(
            f"batch_size={cfg.batch_size}: loss={model_choice('loss')} needs at least "
            f"{loss.min_batch_size} images per batch (it compares the images of a batch)"
        )
    hr_patch = min(int(stage.data.lr_patch_size) for stage in stages) * int(cfg.scale)
    if hr_patch < loss.min_hr_patch_size:
        raise ValueError(
            f"data.lr_patch_size x scale = {hr_patch} HR pixels is smaller than the loss's "
            f"{loss.min_hr_patch_size}-pixel patch windows; raise data.lr_patch_size"
        )


def check_teacher_cache(cfg: DictConfig, loss) -> None:
    """Builder options checked before any work; one log line when the loss needs the online
    teacher (it reads teacher features or runs the teacher itself)."""
    if not (cfg.get("teacher") or {}).get("cache"):
        return
    if not loss.needs_teacher:
        log.info(
            "teacher.cache: loss=%s does not read the teacher; nothing to cache",
            model_choice("loss"),
        )
    elif not loss.reads_teacher_outputs_only:
        reads = [f"features {loss.teacher_taps}"] if loss.teacher_taps else []
        reads += [f"the network itself ({', '.join(loss.teacher_runners)})"] * bool(
            loss.teacher_runners
        )
        log.info(
            "teacher.cache: loss=%s reads the teacher's %s, so the teacher runs online",
            model_choice("loss"),
            " and ".join(reads),
        )
    teacher_cache_callbacks(cfg, loss)  # the builder's options fail here, before any data


TRAIN_FLAGS = (
    "teacher.cache",
    "final_table",
    "compare_without_teacher",
    "module.val_self_ensemble",
    "module.d_eval_in_generator_step",
    "wandb.student_artifact",
)


WANDB_LOGGER = "srdistill.training.wandb_run.training_wandb_logger"


def check_wandb_tags(cfg: DictConfig) -> None:
    """With logger=wandb, the run's W&B tags and project name are ones W&B takes (it checks them
    only once the models are built)."""
    for index, logger in enumerate(cfg.get("logger") or []):
        if logger.get("_target_") == WANDB_LOGGER:
            wandb_run.check_project(logger.get("project"), f"logger.{index}.project")
            wandb_run.check_run_tags(logger.run_tags, logger.get("lora"))


def preflight(cfg: DictConfig) -> tuple[list[DictConfig], WeightedLoss]:
    """Every option, file and output place checked before any data is read or network built;
    returns the training stages and the loss (built once per run: CSD's loads VGG-19)."""
    check_required(cfg)
    check_scale(cfg.scale)
    check_flags(cfg, TRAIN_FLAGS)
    check_input_files(cfg, ("teacher.ckpt", "student.ckpt", "ckpt_path"))
    check_accelerator(cfg)
    check_max_steps(cfg)
    check_wandb_tags(cfg)
    perf.check_perf_options(cfg)
    check_outputs(cfg)
    check_callbacks(cfg)
    stages = stage_configs(cfg)
    loss = build_loss(cfg.loss)
    check_batch_fits_loss(cfg, stages, loss)
    grad_share.check_grad_share_every(cfg.module.get("grad_share_every"), loss)
    balance.check_balance_option(cfg.module.get("balance"), loss, cfg.trainer.get("max_steps"))
    check_teacher_cache(cfg, loss)
    return stages, loss
