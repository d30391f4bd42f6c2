"""The control arm: the same student trained without the teacher, so a gain can be read off.

A distilled student's score says what distillation buys only next to the same student trained
the same way without the teacher. With ``compare_without_teacher=true`` the run also trains that
control: the loss with every term that reads the teacher left out (an adversarial term against
the ground truth stays), the same initial weights, data order, steps and schedule, written to
``<run_dir>/without_teacher``. It logs to CSV there but not to W&B: its curves would land in
the distilled run's W&B run (Lightning reuses the active one) under the same metric names; its
final scores reach W&B as the final table's "student without teacher" row.
"""

from __future__ import annotations

import copy

from omegaconf import DictConfig, open_dict

from srdistill.cli.builders import build_module
from srdistill.cli.preflight import check_outputs
from srdistill.losses.combine import WeightedLoss

CONTROL_FOLDER = "without_teacher"


def teacher_terms(loss: WeightedLoss) -> list[str]:
    """Terms that read the teacher's outputs or features."""
    return [name for name, contract in loss.contracts.items() if contract.needs_teacher]


def control_config(cfg: DictConfig, loss: WeightedLoss) -> DictConfig | None:
    """``cfg`` without the teacher terms of ``loss`` (its built loss), writing below
    ``<run_dir>/without_teacher``; None when the loss reads no teacher (the run already is its
    own control)."""
    dropped = teacher_terms(loss)
    if not dropped:
        return None
    if len(dropped) == len(loss.terms):
        raise ValueError(
            f"compare_without_teacher: every term of the loss ({', '.join(dropped)}) reads the "
            "teacher, so there is no control to train; set compare_without_teacher=false"
        )
    control = copy.deepcopy(cfg)
    with open_dict(control):
        for name in dropped:
            control.loss.terms[name].weight = 0.0
        _balance_what_remains(control, dropped, len(loss.terms) - len(dropped))
        control.run_dir = f"{cfg.run_dir}/{CONTROL_FOLDER}"
        control.compare_without_teacher = False
        if control.get("logger"):
            control.logger = [c for c in control.logger if "wandb" not in str(c.get("_target_"))]
    return control


def _balance_what_remains(control: DictConfig, dropped: list[str], remaining: int) -> None:
    """``module.balance`` in the control applies to the terms it keeps (the adversarial term
    against the ground truth); off when only ``rec`` is left."""
    target = (control.module.get("balance") or {}).get("target")
    if target is None:
        return
    if isinstance(target, DictConfig):
        for name in dropped:
            target.pop(name, None)
        remaining = len(target) + 1
    if remaining <= 1:
        control.module.balance.target = None


def build_control(cfg: DictConfig, module) -> tuple[DictConfig, object] | tuple[None, None]:
    """The no-teacher control arm (``compare_without_teacher``), starting from the very
    weights the distilled student starts from."""
    control_cfg = control_config(cfg, module.loss) if cfg.get("compare_without_teacher") else None
    if control_cfg is None:
        return None, None
    check_outputs(control_cfg)
    control = build_module(control_cfg)
    control.student.load_state_dict(module.student.state_dict())
    return control_cfg, control
