"""``train.py``: distil a student from a frozen teacher; writes results.json in the run folder."""

from __future__ import annotations

import copy
import logging
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from srdistill.cli import sweep
from srdistill.cli.builders import (
    build_loggers,
    build_loss,
    build_module,
    build_trainer,
    config_hash,
)
from srdistill.cli.common import (
    check_flags,
    check_input_files,
    check_required,
    check_scale,
    exit_on_user_error,
    model_choice,
)
from srdistill.cli.control import control_config
from srdistill.cli.final_table import comparison_table, where_line
from srdistill.eval.efficiency import count_flops, count_parameters
from srdistill.export import deployed_architecture, write_state_dict
from srdistill.models.checkpoint import CheckpointError, read_run_checkpoint
from srdistill.models.registry import RecordError, recorded_model
from srdistill.outputs import ensure_writable_dir, write_json
from srdistill.training import grad_share, perf, wandb_run
from srdistill.training.checkpointing import exit_terminated

log = logging.getLogger(__name__)


def _run_dir(cfg: DictConfig) -> Path:
    return Path(cfg.run_dir)


def final_validation(trainer, module, datamodule) -> dict[str, float]:
    """Validation metrics of the final weights (reusing a validation run at the last step):
    ``val/`` the deployed student, ``val_ema/`` or ``val_trained/`` the network as trained
    when they differ."""
    if module.last_validated_step != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = trainer.callback_metrics.items()
    return {k: float(v) for k, v in metrics if k.startswith(("val/", "val_ema/", "val_trained/"))}


def _quiet_expected_warnings() -> None:
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


def check_accelerator(cfg: DictConfig) -> None:
    """A GPU trainer on a machine without one: say which option to change, before any work."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"trainer={model_choice('trainer')} uses accelerator={accelerator} but no CUDA GPU "
            "is available here; add trainer=cpu (or trainer.accelerator=auto)"
        )


def check_outputs(cfg: DictConfig) -> None:
    """The run folder and every checkpoint folder are writable, before any data is read."""
    ensure_writable_dir(_run_dir(cfg), "hydra.run.dir")
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
    for logger in loggers or []:
        logger.log_hyperparams({"tags": run_tags(cfg)})
    wandb_run.log_run_config(
        loggers, OmegaConf.to_container(cfg, resolve=True), wandb_run.code_version()
    )
    done = _checkpoint_step(ckpt_path)
    for i, stage_cfg in enumerate(stages):
        if done >= stage_cfg.trainer.max_steps and i < len(stages) - 1:
            continue
        train_dataset = first_dataset if i == 0 else instantiate(stage_cfg.data.train)
        datamodule = instantiate(stage_cfg.datamodule, train_dataset=train_dataset)
        trainer = build_trainer(stage_cfg, loggers, teacher_cache_callbacks(cfg, module.loss))
        # run checkpoints hold tensors and plain containers only: never unpickle code
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        if i < len(stages) - 1:
            ckpt_path = str(_run_dir(cfg) / "checkpoints" / f"stage{i + 1}-end.ckpt")
            trainer.save_checkpoint(ckpt_path, weights_only=False)  # optimisers too
    return trainer, datamodule


def teacher_cache_callbacks(cfg: DictConfig, loss) -> list:
    """The teacher-output cache builder when ``teacher.cache`` is on and the loss reads only
    the teacher's output; [] otherwise (the teacher then runs online)."""
    teacher = cfg.get("teacher") or {}
    if not teacher.get("cache") or not loss.reads_teacher_outputs_only:
        return []
    return [instantiate(teacher.cache_builder)]


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


def preflight(cfg: DictConfig) -> list[DictConfig]:
    """Every option, file and output place checked before any data is read or model built;
    returns the training stages."""
    check_required(cfg)
    check_scale(cfg.scale)
    check_flags(cfg, TRAIN_FLAGS)
    check_input_files(cfg, ("teacher.ckpt", "student.ckpt", "ckpt_path"))
    check_accelerator(cfg)
    check_wandb_tags(cfg)
    perf.check_perf_options(cfg)
    check_outputs(cfg)
    stages = stage_configs(cfg)
    loss = build_loss(cfg.loss)
    check_batch_fits_loss(cfg, stages, loss)
    grad_share.check_grad_share_every(cfg.module.get("grad_share_every"), loss)
    check_teacher_cache(cfg, loss)
    return stages


def run_tags(cfg: DictConfig) -> dict:
    """What the run is (table, backbone, method, scale, seed): conf/train.yaml ``tags``."""
    tags = cfg.get("tags")
    return OmegaConf.to_container(tags, resolve=True) if tags is not None else {}


def deployed_flops_g(student: torch.nn.Module) -> float | None:
    """The papers' "FLOPs" of the deployed student in G: multiply-accumulates at an LR input of
    3x256x256 (MCAD-KD Tab. 2, NTIRE efficient SR; half of torch's FLOP count), counted on the
    meta device. A network the counter cannot trace costs the figure a point, never the run: None
    and one warning."""
    try:
        return count_flops(student, (256, 256)) / 2e9
    except Exception as err:  # noqa: BLE001 - any failure of an optional statistic
        log.warning("FLOPs of the student not counted (results.json flops_g: null): %s", err)
        return None


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
        "teacher": module.teacher_identity,
        "tags": run_tags(cfg),
        "code": wandb_run.code_version(),
    }
    # the deployed network's size and cost: srdistill-report's PSNR-vs-parameters and -FLOPs
    # figures; flops_g in the papers' convention, as in report/paper_numbers.json
    student = module.export_student()
    results["params"] = count_parameters(student)
    results["flops_g"] = deployed_flops_g(student)
    if module.hparams.get("grad_share_every"):
        every = module.hparams.grad_share_every
        results["grad_share"] = grad_share.summarize(every, module.grad_share_history)
    return results, trainer, datamodule


def build_control(cfg: DictConfig, module) -> tuple[DictConfig, object] | tuple[None, None]:
    """The no-teacher control arm (``compare_without_teacher``), starting from the very
    weights the distilled student starts from."""
    control_cfg = control_config(cfg) if cfg.get("compare_without_teacher") else None
    if control_cfg is None:
        return None, None
    check_outputs(control_cfg)
    control = build_module(control_cfg)
    control.student.load_state_dict(module.student.state_dict())
    return control_cfg, control


def run(cfg: DictConfig) -> dict:
    """Fit (and the control arm when asked), compare, write and return ``results.json``."""
    _quiet_expected_warnings()
    stages = preflight(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    first_dataset = instantiate(stages[0].data.train)  # the data is checked before any model
    module = build_module(cfg)
    control_cfg, control = build_control(cfg, module)
    results, trainer, datamodule = train_arm(cfg, module, first_dataset)
    if control is not None:
        results["without_teacher"] = train_arm(control_cfg, control, first_dataset)[0]
    if cfg.final_table and trainer.is_global_zero:
        names = tuple(cfg.get("final_table_models") or ("bicubic", "teacher", "student"))
        results["comparison"], table = comparison_table(
            module, datamodule, cfg.scale, names, control
        )
        print(table)
        print(where_line(_run_dir(cfg), trainer.checkpoint_callback.best_model_path or None))
    if trainer.is_global_zero:
        # strict JSON: a non-finite metric is null, never a bare NaN other readers reject
        write_json(_run_dir(cfg) / "results.json", results, "results.json")
        report_to_wandb(cfg, trainer.loggers, module, results)
    return results


def write_student(module, path: Path) -> tuple[Path, dict]:
    """The deployed student as safetensors naming its architecture (as ``export.py`` writes
    it), and that architecture as plain values (none when no registry name fits it)."""
    model = module.export_student()
    try:
        architecture = deployed_architecture(*recorded_model(module.student_build), model)
    except (KeyError, RecordError, TypeError, ValueError):
        architecture = None
    write_state_dict(model, path, "safetensors", architecture)
    name, args = architecture or (None, None)
    return path, {"architecture": name, "architecture_args": args}


def report_to_wandb(cfg: DictConfig, loggers, module, results: dict) -> None:
    """The final table and, with ``wandb.student_artifact``, the student as a model artifact."""
    if not wandb_run.wandb_loggers(loggers):
        return
    wandb_run.log_final_table(loggers, results.get("comparison") or {})
    if OmegaConf.select(cfg, "wandb.student_artifact"):
        path, meta = write_student(module, _run_dir(cfg) / "student.safetensors")
        keys = ("tags", "steps", "val", "config_hash", "code", "teacher", "params")
        meta.update({"scale": cfg.scale, **{k: results[k] for k in keys if k in results}})
        wandb_run.log_student_artifact(loggers, path, meta)


def main_from_cfg(cfg: DictConfig) -> float | sweep.JobFailure:
    """Returns the first validation set's PSNR, the value Hydra sweepers optimise. A failed job
    of a sweep returns its failure, so that the sweep runs the other jobs (cli/sweep.py)."""
    if sweep.in_sweep():
        return sweep.run_job(train_and_score, cfg)
    return exit_on_user_error(train_and_score)(cfg)


def train_and_score(cfg: DictConfig) -> float:
    """One run; its W&B run, if any, is closed as failed when the run fails."""
    try:
        results = run(cfg)
    except SIGTERMException:  # Lightning stops at a step boundary; LastCheckpoint saved it
        wandb_run.finish_active_run(failed=True)
        exit_terminated(_run_dir(cfg) / "checkpoints" / "last.ckpt")
    except BaseException:
        wandb_run.finish_active_run(failed=True)
        raise
    wandb_run.finish_active_run()
    return float(results["val"].get(f"val/{cfg.val.sets[0]}/psnr_y", float("nan")))
