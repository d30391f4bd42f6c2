"""What a training run shows in Weights & Biases (``logger=wandb``).

A run is named and tagged by what it is (method, backbone, LoRA, scale, seed, table), grouped by
its experiment, carries the resolved config and the code version that ran, and ends with the
final comparison table, its numbers in the run summary and, when asked, the exported student as
a model artifact. The step axis of every metric is ``trainer/global_step``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from srdistill.export_formats import export_checked
from srdistill.models.run_student import deployed_architecture_of
from srdistill.training.loggers import wandb_logger

UNKNOWN = "unknown"
NO_LORA = (None, "none", "null")


def _lora_name(lora: str | None) -> str | None:
    return None if lora in NO_LORA else str(lora)


def run_name(tags: Mapping, lora: str | None = None) -> str:
    """``<method>-<backbone>[+<lora>]_x<scale>_seed<seed>``, e.g. ``mcad-swinir_x4_seed0``."""
    lora = _lora_name(lora)
    arch = f"{tags['backbone']}+{lora}" if lora else f"{tags['backbone']}"
    return f"{tags['method']}-{arch}_x{tags['scale']}_seed{tags['seed']}"


def _tags_by_option(tags: Mapping, lora: str | None) -> list[tuple[str, str]]:
    """Each W&B tag of the run beside the option that sets it."""
    listed = [
        ("tags.backbone", f"backbone={tags['backbone']}"),
        ("tags.method", f"method={tags['method']}"),
        ("lora", f"lora={_lora_name(lora) or 'none'}"),
        ("tags.scale", f"x{tags['scale']}"),
        ("tags.seed", f"seed={tags['seed']}"),
    ]
    if tags.get("table") is not None:
        listed.append(("tags.table", f"table={tags['table']}"))
    return listed


def run_tag_list(tags: Mapping, lora: str | None = None) -> list[str]:
    """``backbone=``, ``method=``, ``lora=``, ``x<scale>``, ``seed=`` and ``table=`` when set:
    the fields a dashboard filters a sweep's runs by."""
    return [tag for _, tag in _tags_by_option(tags, lora)]


# W&B refuses a run with a longer tag (wandb.sdk.wandb_settings, validate_run_tags), and only
# when the logger starts, after the models are built; it restricts no characters
MAX_TAG_LENGTH = 64


def check_run_tags(tags: Mapping, lora: str | None = None) -> None:
    """Every W&B tag of the run fits W&B's limit; the error names the option that makes it."""
    for option, tag in _tags_by_option(tags, lora):
        if len(tag) > MAX_TAG_LENGTH:
            shown = f"{tag[:40]}..." if len(tag) > 43 else tag
            raise ValueError(
                f"{option}: the W&B tag '{shown}' is {len(tag)} characters, W&B takes at most "
                f"{MAX_TAG_LENGTH}; shorten {option}"
            )


# W&B's rules for a project name (wandb.sdk.wandb_settings, validate_project), also checked only
# when the logger starts; it has none for an entity (the server judges that one)
MAX_PROJECT_LENGTH = 128
PROJECT_FORBIDDEN = "/\\#?%:"


def check_project(project, option: str = "project") -> None:
    """The W&B project name is one W&B takes; the error names ``option``, which sets it."""
    if project is None:
        return
    name = str(project)
    if len(name) > MAX_PROJECT_LENGTH:
        raise ValueError(
            f"{option}: the W&B project name is {len(name)} characters, W&B takes at most "
            f"{MAX_PROJECT_LENGTH}; shorten {option}"
        )
    found = [char for char in PROJECT_FORBIDDEN if char in name]
    if found:
        raise ValueError(
            f"{option}={name!r}: a W&B project name cannot hold {' '.join(PROJECT_FORBIDDEN)} "
            f"(found {' '.join(found)}); give {option} a name without them"
        )


def run_group(experiment: str | None) -> str | None:
    """The experiment (``experiment=mcad_tab3``): a table's jobs group together, and a job re-run
    later (a failed seed, one more arm) lands beside them instead of in a group of its own; the
    tags tell the arms apart. A sweep without an experiment groups by its sweep folder (one
    launch); a single run without one is not grouped."""
    if experiment:
        return str(experiment)
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover - hydra is a dependency
        return None
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return f"sweep-{Path(HydraConfig.get().sweep.dir).name}"


def _git(folder: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def code_version(package_dir: str | Path | None = None) -> dict:
    """``{"commit", "dirty", "version"}`` of the srdistill code that runs: the git commit of its
    checkout (``"unknown"`` outside one, or when installed into a folder git does not track,
    e.g. a virtual environment inside some repository) and the installed package version."""
    folder = Path(package_dir or Path(__file__).resolve().parents[1])
    commit, dirty = UNKNOWN, None
    if _git(folder, "ls-files", "--error-unmatch", "__init__.py") is not None:
        commit = _git(folder, "rev-parse", "HEAD") or UNKNOWN
        status = _git(folder, "status", "--porcelain", "--untracked-files=no")
        dirty = None if status is None else bool(status)
    try:
        version = metadata.version("srdistill")
    except metadata.PackageNotFoundError:
        version = UNKNOWN
    return {"commit": commit, "dirty": dirty, "version": version}


def training_wandb_logger(
    project: str,
    save_dir: str,
    run_tags: Mapping,
    lora: str | None = None,
    experiment: str | None = None,
    mode: str | None = None,
    job_type: str = "train",
) -> WandbLogger:
    """A WandbLogger named, tagged and grouped by what the run is (conf/logger/wandb.yaml)."""
    tags = dict(run_tags)
    return wandb_logger(
        project,
        name=run_name(tags, lora),
        save_dir=save_dir,
        mode=mode,
        tags=run_tag_list(tags, lora),
        group=run_group(experiment),
        job_type=job_type,
    )


def wandb_loggers(loggers: Iterable | bool | None) -> list[WandbLogger]:
    return [lg for lg in (loggers or []) if isinstance(lg, WandbLogger)]


def log_run_config(loggers, config: Mapping, code: Mapping) -> None:
    """The resolved config (plain values) and the code version as the run's config, and the
    gradient shares on the step axis."""
    for logger in wandb_loggers(loggers):
        run = logger.experiment
        run.config.update({**config, "code": dict(code)}, allow_val_change=True)
        run.define_metric("train/grad_share/*", step_metric="trainer/global_step")


def _key(name: str) -> str:
    return name.replace(" ", "_")


def log_final_table(loggers, comparison: Mapping[str, Mapping[str, Mapping]]) -> None:
    """The final table (``final/table``: a row per network and set) and its numbers in the run
    summary, ``final/<network>/<set>/psnr`` and ``/ssim`` (spaces in names as ``_``)."""
    runs = [logger.experiment for logger in wandb_loggers(loggers)]
    if not runs or not comparison:
        return
    import wandb

    rows = [
        [name, set_name, float(m["psnr"]), float(m["ssim"])]
        for name, per_set in comparison.items()
        for set_name, m in per_set.items()
    ]
    for run in runs:
        run.log({"final/table": wandb.Table(columns=["model", "set", "psnr", "ssim"], data=rows)})
        for name, set_name, psnr, ssim in rows:
            run.summary[f"final/{_key(name)}/{set_name}/psnr"] = psnr
            run.summary[f"final/{_key(name)}/{set_name}/ssim"] = ssim


def artifact_name(run_name_: str) -> str:
    """W&B artifact names allow letters, digits, ``-``, ``_`` and ``.`` only."""
    return "student-" + re.sub(r"[^A-Za-z0-9_.-]", "_", run_name_)


def log_student_artifact(loggers, path: str | Path, meta: Mapping) -> None:
    """The exported student file as a ``model`` artifact with ``meta`` (plain values)."""
    runs = [logger.experiment for logger in wandb_loggers(loggers)]
    if not runs:
        return
    import wandb

    for run in runs:
        artifact = wandb.Artifact(artifact_name(run.name or "run"), type="model", metadata=meta)
        artifact.add_file(str(path))
        run.log_artifact(artifact)


def finish_active_run(failed: bool = False) -> None:
    """End the W&B run of this job, so that the next job of a sweep in this process starts a
    run of its own (Lightning would reuse an active one). Nothing when W&B was never used."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.run.finish(exit_code=1 if failed else 0)


def report_final(cfg: DictConfig, loggers, module, results: Mapping) -> None:
    """The final table and, with ``wandb.student_artifact``, the deployed student as a model
    artifact, written and checked as ``export.py`` writes it (safetensors naming its
    architecture when srdistill can rebuild it)."""
    if not wandb_loggers(loggers):
        return
    log_final_table(loggers, results.get("comparison") or {})
    if not OmegaConf.select(cfg, "wandb.student_artifact"):
        return
    model = module.export_student()
    architecture = deployed_architecture_of(module.build_record, model)
    path = Path(cfg.run_dir) / "student.safetensors"
    export_checked(model, path, "safetensors", cfg.scale, architecture)
    name, args = architecture or (None, None)
    keys = ("tags", "steps", "val", "config_hash", "code", "teacher", "params")
    meta = {"architecture": name, "architecture_args": args, "scale": cfg.scale}
    meta.update({k: results[k] for k in keys if k in results})
    log_student_artifact(loggers, path, meta)
