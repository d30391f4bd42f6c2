"""Turning a composed training config into objects (the only place train configs are built)."""

from __future__ import annotations

import hashlib

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from srdistill.cli.common import build_model, model_choice
from srdistill.losses.combine import WeightedLoss
from srdistill.models import zoo
from srdistill.models.registry import build_record_of
from srdistill.module import DistillationModule
from srdistill.training import perf
from srdistill.training.perf import speed_callbacks
from srdistill.training.text_progress import progress_callbacks


def config_hash(cfg: DictConfig) -> str:
    text = OmegaConf.to_yaml(cfg, resolve=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_loss(loss_cfg: DictConfig) -> WeightedLoss:
    # a term with weight 0 is left out unbuilt; its name still counts for loss.step_groups
    terms = {
        name: {
            "weight": float(term.weight),
            "loss": instantiate(term.loss) if float(term.weight) != 0.0 else None,
        }
        for name, term in loss_cfg.terms.items()
    }
    groups = loss_cfg.get("step_groups")
    return WeightedLoss(terms, [list(g) for g in groups] if groups is not None else None)


def build_teacher(cfg: DictConfig, needed: bool) -> tuple[nn.Module | None, dict]:
    """The teacher (weights from ``teacher.ckpt``) when a loss term reads it."""
    if not needed:
        return None, {}
    name = model_choice("model@teacher.arch")
    ckpt = cfg.teacher.ckpt
    if not ckpt and cfg.teacher.get("require_ckpt", True):
        raise ValueError(
            f"teacher.ckpt is not set: the loss distils from teacher {name}, give its weights "
            "with teacher.ckpt=PATH (a random teacher teaches nothing)"
        )
    path, digest, entry = teacher_file(cfg, name)
    identity = {"arch": name, "path": str(path) if path else None, "sha256": digest}
    if entry is not None:
        identity["zoo"] = entry.name
    teacher = build_model(cfg.teacher.arch, path, f"teacher {name}", "teacher.ckpt")
    if getattr(teacher, "architecture", None):  # spandrel: the architecture the file holds
        identity["architecture"] = teacher.architecture
    return teacher, identity


def teacher_file(cfg: DictConfig, name: str) -> tuple[str | None, str | None, zoo.ZooEntry | None]:
    """``teacher.ckpt`` as a local file, its SHA-256 and its zoo entry: ``zoo:<name>`` is fetched
    and verified; a local file is verified against ``teacher.zoo`` when that names an entry."""
    ckpt, pin, option = cfg.teacher.ckpt, cfg.teacher.get("sha256"), "teacher.ckpt"
    named = cfg.teacher.get("zoo")
    entry = zoo.entry_for(ckpt, option) if zoo.is_reference(ckpt) else None
    if named and entry is not None and entry.name != named:
        raise ValueError(
            f"teacher.ckpt={ckpt} is not teacher.zoo={named}; pick one (teacher=zoo/<name>)"
        )
    entry = entry or (zoo.entry(named, "teacher.zoo") if named else None)
    if entry is not None:
        _check_zoo_fits(cfg, name, entry)
    if not ckpt:
        return None, None, entry
    if zoo.is_reference(ckpt):
        path, digest = zoo.resolve(ckpt, pin, option)
        return str(path), digest, entry
    return str(ckpt), zoo.verify(ckpt, entry, pin, option), entry


def _check_zoo_fits(cfg: DictConfig, name: str, entry: zoo.ZooEntry) -> None:
    """The configured teacher is the entry's architecture at the run's scale (one line if not)."""
    if cfg.scale != entry.scale:
        raise ValueError(
            f"teacher zoo entry {entry.name} is a x{entry.scale} network but scale={cfg.scale}; "
            f"run with scale={entry.scale}"
        )
    if name != "model@teacher.arch" and name != entry.model:
        raise ValueError(
            f"teacher zoo entry {entry.name} is a {entry.model} network, but the teacher is "
            f"{name}; select it with teacher=zoo/{entry.name}"
        )


def build_student(cfg: DictConfig) -> tuple[nn.Module, dict | None, dict]:
    """The student with its weights, adapters when ``lora`` is set, the pre-trained weights
    to average with (when ``module.average_weight`` is set) and what rebuilds it for export."""
    name = model_choice("model@student.arch")
    student = build_model(cfg.student.arch, cfg.student.ckpt, f"student {name}", "student.ckpt")
    average_weight = cfg.module.get("average_weight")
    pretrained = None
    if average_weight is not None:
        if not cfg.student.ckpt:
            raise ValueError(
                "module.average_weight averages with the pre-trained student, but student.ckpt "
                "is not set; give student.ckpt=PATH or set module.average_weight=null"
            )
        pretrained = {k: v.detach().clone() for k, v in student.state_dict().items()}
    lora_cfg = cfg.get("lora") or None
    if lora_cfg:
        if not cfg.student.ckpt and lora_cfg.get("freeze_base", True):
            raise ValueError(
                "lora adapts a pre-trained student but student.ckpt is not set; give "
                "student.ckpt=PATH (or lora=none to train the whole student)"
            )
        instantiate(lora_cfg).apply(student)
    # plain values from an allow-list: export rebuilds from them and never from a _target_
    build = build_record_of(
        name,
        OmegaConf.to_container(cfg.student.arch, resolve=True),
        OmegaConf.to_container(lora_cfg, resolve=True) if lora_cfg else None,
        average_weight,
    )
    return student, pretrained, build


def build_module(cfg: DictConfig, loss: WeightedLoss | None = None) -> DistillationModule:
    """The module of ``cfg``; ``loss``: the run's loss when already built (once per run)."""
    loss = loss if loss is not None else build_loss(cfg.loss)
    teacher, identity = build_teacher(cfg, loss.needs_teacher)
    student, pretrained, build_record = build_student(cfg)
    disc_cfg = cfg.loss.get("discriminator")
    discriminator = (
        instantiate(disc_cfg) if disc_cfg is not None and loss.needs_discriminator else None
    )
    return DistillationModule(
        student,
        loss,
        instantiate(cfg.optimizer),
        teacher=teacher,
        discriminator=discriminator,
        d_optimizer=instantiate(cfg.d_optimizer),
        scheduler=instantiate(cfg.scheduler),
        d_scheduler=instantiate(cfg.d_scheduler),
        d_loss_scale=cfg.loss.get("d_loss_scale", 1.0),
        step_order=cfg.loss.get("step_order", "g_then_d"),
        val_sets=list(cfg.val.sets),
        scale=cfg.scale,
        teacher_identity=identity,
        pretrained_student=pretrained,
        build_record=build_record,
        # plain containers keep run checkpoints loadable with torch.load(weights_only=True)
        **OmegaConf.to_container(cfg.module, resolve=True),
        **perf.module_options(cfg.get("perf")),
    )


def build_loggers(cfg: DictConfig) -> list | bool:
    return [instantiate(c) for c in cfg.logger] if cfg.get("logger") else False


def build_trainer(cfg: DictConfig, loggers: list | bool | None = None, extra_callbacks=()):
    """A Trainer; pass ``loggers`` to keep logging into the same run across training stages;
    ``extra_callbacks`` run before the configured ones (the teacher-output cache)."""
    callbacks = list(extra_callbacks) + speed_callbacks(cfg.get("perf"))
    if cfg.get("callbacks"):
        # callbacks.samples=null switches one off
        callbacks += [instantiate(c) for c in cfg.callbacks.values() if c is not None]
    # output to a file: log lines in place of the progress bar (training/text_progress.py)
    callbacks += progress_callbacks(
        cfg.trainer.get("enable_progress_bar"), cfg.get("progress_every_n_steps")
    )
    loggers = build_loggers(cfg) if loggers is None else loggers
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
