"""``module.balance``: each auxiliary term's weight set from its measured gradient share, once.

A weight copied from a paper says how strongly a term pulls only on that paper's network, data
and loss units; on another student the same weight can pull hundreds of times harder than
reconstruction, or not at all. With ``module.balance.target`` set, the first
``module.balance.steps`` generator steps *measure* each balanced term's gradient on the student
next to the reconstruction term's (``srdistill.training.grad_share``: ratio = ||g_term|| /
||g_rec|| at weight 1), then fix ``weight = target / median(ratio)`` for the rest of the run.

During those steps the balanced terms are computed but enter the update with weight 0: the
student, and the optimizer's moment estimates, see no term at a weight that is about to change
(Adam's second moment remembers a gradient 1000x too large for about a thousand steps). Their own
parameters (regressors, projection heads) start learning with the balanced weight; D trains as
configured throughout.

Only terms minimised in the same optimizer step as ``rec`` can be compared with it (with
``loss.step_groups``, DUKD); any other is refused before training. Under DDP the medians are
averaged over processes, so every process trains with the same weights.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping, Sequence

import torch

from srdistill.counts import check_count
from srdistill.losses.combine import WeightedLoss
from srdistill.training.grad_share import REFERENCE, grad_shares

OPTION = "module.balance"


def _positive_finite(value, where: str) -> float:
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if not number or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where} must be a positive number, got {value!r}")
    return float(value)


def balance_targets(target, loss: WeightedLoss) -> dict[str, float]:
    """``{term: target share}`` of ``module.balance.target``: a number for every active term but
    ``rec``, or a map ``term -> share``; {} when the option is null (balancing off)."""
    if target is None:
        return {}
    if REFERENCE not in loss.weights:
        raise ValueError(
            f"{OPTION} measures each term against the reconstruction term {REFERENCE!r}, which "
            f"this loss lacks (terms: {', '.join(loss.weights)}); set {OPTION}.target=null"
        )
    others = [name for name in loss.weights if name != REFERENCE]
    if isinstance(target, Mapping):
        if not target:
            raise ValueError(f"{OPTION}.target is an empty map: name a term, e.g. {{resp: 1}}")
        targets = {str(k): _positive_finite(v, f"{OPTION}.target.{k}") for k, v in target.items()}
        unknown = [name for name in targets if name not in others]
        if unknown:
            raise ValueError(
                f"{OPTION}.target names {unknown}, which the loss has not as an active term "
                f"besides {REFERENCE!r} (terms: {', '.join(others) or 'none'})"
            )
    else:
        share = _positive_finite(target, f"{OPTION}.target")
        targets = dict.fromkeys(others, share)
    if not targets:
        raise ValueError(
            f"{OPTION}: the loss has no term besides {REFERENCE!r} to balance; "
            f"set {OPTION}.target=null"
        )
    _check_same_step(targets, loss)
    return targets


def _check_same_step(targets: Mapping[str, float], loss: WeightedLoss) -> None:
    rec_group = next(group for group in loss.step_groups if REFERENCE in group)
    apart = [name for name in targets if name not in rec_group]
    if apart:
        beside = [name for name in rec_group if name != REFERENCE]
        example = f" (e.g. {{{beside[0]}: 1.0}})" if beside else ""
        raise ValueError(
            f"{OPTION}: {', '.join(apart)} is minimised in another optimizer step than "
            f"{REFERENCE!r} (loss.step_groups), so its gradient share cannot be measured against "
            f"it; give {OPTION}.target as a map without it{example}, "
            "or set loss.step_groups=null"
        )


def balance_steps(steps, max_steps: int | None = None) -> int:
    """``module.balance.steps``: a positive step count below ``trainer.max_steps``."""
    check_count(f"{OPTION}.steps", steps)
    if max_steps is not None and max_steps > 0 and steps >= max_steps:
        raise ValueError(
            f"{OPTION}.steps={steps} leaves no step to train at the balanced weights "
            f"(trainer.max_steps={max_steps}); give fewer steps"
        )
    return steps


def _option(option) -> Mapping:
    if option is None:
        return {}
    if not isinstance(option, Mapping):
        raise ValueError(
            f"{OPTION} must be {{target, steps}} or null, got {option!r}; "
            f"e.g. {OPTION}.target=1 {OPTION}.steps=20"
        )
    return option


def check_balance_option(option, loss: WeightedLoss, max_steps: int | None) -> None:
    """Preflight: the whole option checked against the loss and the run's length."""
    option = _option(option)
    if option.get("target") is not None:
        balance_targets(option["target"], loss)
        balance_steps(option.get("steps"), max_steps)


class LossBalance:
    """Measures the shares over the first ``steps`` generator steps, then sets the weights of
    ``loss`` in place. Inert when ``option`` is None or its target is null."""

    def __init__(self, option: Mapping | None, loss: WeightedLoss) -> None:
        option = _option(option)
        self.loss = loss
        self.targets = balance_targets(option.get("target"), loss)
        self.steps = balance_steps(option.get("steps")) if self.targets else 0
        self.configured = {name: loss.weights[name] for name in self.targets}
        self.ratios: dict[str, list[float]] = {name: [] for name in self.targets}
        self.weights: dict[str, float] | None = None
        self.medians: dict[str, float] = {}  # over processes under DDP: what set the weights
        for name in self.targets:
            loss.weights[name] = 0.0  # computed, measured, not yet trained on

    @property
    def calibrating(self) -> bool:
        return bool(self.targets) and self.weights is None

    def record(
        self, step: int, values: Mapping[str, torch.Tensor], params: Sequence, module
    ) -> None:
        """``values``: one generator step's unweighted terms (of the group holding ``rec``)."""
        if not self.calibrating or REFERENCE not in values:
            return
        terms = {REFERENCE: self.loss.weights[REFERENCE] * values[REFERENCE]}
        terms.update({name: values[name] for name in self.targets})
        if not all(bool(torch.isfinite(v.detach()).all()) for v in terms.values()):
            return  # a step the non-finite guard skips measures nothing either
        shares = grad_shares(terms, params)
        ratios = {name: shares.get(f"{name}/ratio", 0.0) for name in self.targets}
        if not all(math.isfinite(r) for r in ratios.values()):
            return
        for name, ratio in ratios.items():
            self.ratios[name].append(ratio)
        if len(self.ratios[next(iter(self.targets))]) >= self.steps:
            self._finish(step, module)

    def _finish(self, step: int, module) -> None:
        medians = [statistics.median(self.ratios[n]) for n in self.targets]
        medians = torch.tensor(medians, dtype=torch.float64, device=module.device)
        medians = module.trainer.strategy.reduce(medians, reduce_op="mean")
        self.weights = {}
        self.medians = dict(zip(self.targets, medians.tolist(), strict=True))
        for name, median in self.medians.items():
            if median > 0:
                self.weights[name] = self.targets[name] / median
            else:
                warnings.warn(
                    f"{OPTION}: term {name!r} had no gradient on the student over the first "
                    f"{self.steps} steps; it keeps its configured weight "
                    f"{self.configured[name]:g}",
                    stacklevel=2,
                )
                self.weights[name] = self.configured[name]
        self.loss.weights.update(self.weights)
        metrics = {f"train/balance/weight/{n}": w for n, w in self.weights.items()}
        for logger in module.loggers:
            logger.log_metrics(metrics, step=step)

    def summary(self) -> dict | None:
        """The ``balance`` record of results.json (None when balancing was off)."""
        if not self.targets:
            return None
        return {
            "target": dict(self.targets),
            "steps": self.steps,
            "weights": dict(self.weights) if self.weights is not None else None,
            "configured": dict(self.configured),
            "measured_ratio_at_weight_1": dict(self.medians),
        }

    def state(self) -> dict:
        """For run checkpoints: plain numbers only."""
        return {
            "target": dict(self.targets),
            "steps": self.steps,
            "ratios": {n: list(r) for n, r in self.ratios.items()},
            "weights": self.weights,
            "medians": dict(self.medians),
        }

    def restore(self, state) -> None:
        """A resumed run continues the calibration, or trains at the weights it had found.
        The record is checked: the same option, names this loss's balanced terms, values
        finite; a run resumed with another option (or none) is refused, since its weights
        would change mid-run."""
        self.check_resume({"balance": state})
        ratios, weights = state.get("ratios"), state.get("weights")
        if not isinstance(ratios, Mapping) or set(ratios) != set(self.targets):
            raise ValueError(
                f"the checkpoint's balance record is for terms {sorted(ratios or [])}, "
                f"this run balances {sorted(self.targets)}: resume with the same loss and "
                f"{OPTION}"
            )
        self.ratios = {n: [_finite(v, "ratio") for v in ratios[n]] for n in self.targets}
        if weights is not None:
            if not isinstance(weights, Mapping) or set(weights) != set(self.targets):
                raise ValueError("the checkpoint's balance weights do not match module.balance")
            self.weights = {n: _finite(weights[n], "weight") for n in self.targets}
            self.loss.weights.update(self.weights)
            medians = state.get("medians") or {}
            self.medians = {n: _finite(medians[n], "median") for n in medians if n in self.targets}

    def check_resume(self, checkpoint: Mapping) -> None:
        """Before a run resumes from ``checkpoint`` (a run checkpoint's contents): it was
        written with the same option, or, without a balance record, balancing is off or the
        checkpoint is at step 0."""
        state = checkpoint.get("balance")
        if state is None:
            self.check_fresh_start(checkpoint)
            return
        if not isinstance(state, Mapping):
            raise ValueError("the checkpoint's balance record is not a mapping")
        if state.get("target") != self.targets or state.get("steps") != self.steps:
            raise ValueError(
                f"ckpt_path: the checkpoint was trained with {OPTION}.target="
                f"{state.get('target')} and steps={state.get('steps')}; resume with the same "
                f"{OPTION} (now target={self.targets or None}, steps={self.steps})"
            )

    def check_fresh_start(self, checkpoint: Mapping) -> None:
        """A run resumed from a checkpoint of a run without balancing cannot calibrate on its
        first steps any more."""
        if self.targets and int(checkpoint.get("global_step", 0) or 0) > 0:
            raise ValueError(
                f"ckpt_path: the checkpoint was trained without {OPTION}, which measures the "
                f"first {self.steps} steps of a run; resume without it, or start a new run"
            )


def _finite(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"the checkpoint's balance record holds a {what} that is not a number")
    return float(value)
