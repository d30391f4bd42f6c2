"""The contract between a loss term and the rest of srdistill.

A loss term is an ``nn.Module`` whose ``forward(ctx)`` takes the ``StepContext`` of one
generator step (``srdistill.losses.context``: batch ``lq``/``gt``, the student's output ``sr_s``
and, on request, the teacher's) and returns a scalar tensor; ``WeightedLoss`` adds the terms up
with their weights. A term says what it needs through class attributes (or properties, read
once when the loss is built). Subclass ``LossTerm`` to get the defaults and the documentation;
a plain ``nn.Module`` works too, the defaults standing in for what it does not declare.

- ``needs_teacher = False``: True when the term reads the teacher's output or features
  (``ctx.sr_t``, ``ctx.feats_t``, ``ctx.teacher_output()``); they are then computed each step.
- ``student_taps = ()``, ``teacher_taps = ()``: names of the intermediate features the term
  reads from ``ctx.feats_s`` / ``ctx.feats_t`` (a list of str). A tap is a named point of the
  network (``block_1``) or a module path inside it (``body.3``).
- ``min_batch_size = 1``, ``min_hr_patch_size = 1``: the smallest batch and HR training patch
  the term works with (ints >= 1), checked before training starts.
- ``runs_teacher = False``: True when the term runs ``ctx.teacher`` on inputs of its own; the
  teacher must then be online (no teacher-output cache). It implies ``needs_teacher``.
- ``reads_student_output = True``: False when the term never reads ``ctx.sr_s``/``feats_s``
  (it runs ``ctx.student`` itself), so a later step group need not recompute them for it.
- ``adversarial = False``: True when the term reads ``ctx.discriminator``; the run then
  builds ``loss.discriminator`` and trains it.
- ``logged_values()``: extra values of the last forward to log (e.g. the parts of a sum),
  ``{key: tensor}`` logged as ``train/loss/<term name>/<key>``; ``{}`` by default. (A plain
  module's ``last_terms`` dict, the form before this contract, is logged the same way.)
- ``step_metrics()``: values describing the term's state after the optimizer step (e.g. a
  learned temperature), ``{key: tensor}`` logged as ``train/<key>``; ``{}`` by default.

A term that is a wrapper forwarding attribute reads (``torch.compile(term)``) is read through
the wrapper. Flags take ``True``/``False`` (also ``1``/``0`` and numpy booleans).

Parameters of a term (projection heads, a temperature) train with the student. The teacher is
frozen: a term that runs it must not let its parameters receive gradients.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from srdistill.counts import check_count
from srdistill.losses.context import StepContext


class LossTerm(nn.Module):
    """Base class of loss terms: the contract's attributes with their defaults (see above)."""

    needs_teacher: bool = False
    student_taps: Sequence[str] = ()
    teacher_taps: Sequence[str] = ()
    min_batch_size: int = 1
    min_hr_patch_size: int = 1
    runs_teacher: bool = False
    reads_student_output: bool = True
    adversarial: bool = False

    def forward(self, ctx: StepContext) -> torch.Tensor:
        """The term's value, a scalar tensor."""
        raise NotImplementedError(f"{type(self).__name__} must define forward(ctx)")

    def logged_values(self) -> dict[str, torch.Tensor]:
        """Extra values of the last forward, logged under ``train/loss/<term name>/<key>``."""
        return {}

    def step_metrics(self) -> dict[str, torch.Tensor]:
        """The term's state after the optimizer step, logged under ``train/<key>``."""
        return {}


FLAGS = ("needs_teacher", "runs_teacher", "reads_student_output", "adversarial")
SIZES = ("min_batch_size", "min_hr_patch_size")
TAPS = ("student_taps", "teacher_taps")


@dataclass(frozen=True)
class TermContract:
    """What one term declares, read and checked once by ``TermContract.of``."""

    needs_teacher: bool
    student_taps: tuple[str, ...]
    teacher_taps: tuple[str, ...]
    min_batch_size: int
    min_hr_patch_size: int
    runs_teacher: bool
    reads_student_output: bool
    adversarial: bool
    values_from: str | None  # "logged_values", "last_terms" (the older form) or None
    has_step_metrics: bool

    @classmethod
    def of(cls, term: nn.Module) -> TermContract:
        """The contract of ``term`` (any ``nn.Module``), ``LossTerm``'s defaults for what it
        does not declare; ValueError naming the class and attribute for a wrong type."""
        flags = {name: _flag(term, name) for name in FLAGS}
        flags["needs_teacher"] = flags["needs_teacher"] or flags["runs_teacher"]
        values_from = "logged_values" if callable(_declared(term, "logged_values", None)) else None
        if values_from is None and isinstance(_declared(term, "last_terms", None), dict):
            values_from = "last_terms"
        return cls(
            **flags,
            **{name: _size(term, name) for name in SIZES},
            **{name: _taps(term, name) for name in TAPS},
            values_from=values_from,
            has_step_metrics=callable(_declared(term, "step_metrics", None)),
        )


def logged_values_of(term: nn.Module, contract: TermContract) -> dict[str, torch.Tensor]:
    """The extra values ``term``'s last forward reported, as its contract says to read them."""
    if contract.values_from is None:
        return {}
    values = getattr(term, contract.values_from)
    return dict(values() if callable(values) else values)


def _declared(term: nn.Module, name: str, default: Any) -> Any:
    """``term.name`` when the term or its class declares it, else ``default``. Not
    ``getattr(term, name, default)`` for a plain module: that would hide an AttributeError raised
    inside a property behind the default. A wrapper that forwards attribute reads (its class
    has a ``__getattr__`` of its own, as ``torch.compile``'s does) is asked directly."""
    if name in vars(term) or hasattr(type(term), name):
        try:
            return getattr(term, name)
        except AttributeError as err:
            raise ValueError(f"{_where(term, name)} cannot be read: {err}") from None
    if type(term).__getattr__ is not nn.Module.__getattr__:
        return getattr(term, name, default)
    return default


def _where(term: nn.Module, name: str) -> str:
    return f"{type(term).__name__}.{name}"


def _flag(term: nn.Module, name: str) -> bool:
    value = _declared(term, name, getattr(LossTerm, name))
    if isinstance(value, bool | np.bool_) or (
        isinstance(value, numbers.Integral) and value in (0, 1)
    ):
        return bool(value)
    raise ValueError(f"{_where(term, name)} must be True or False, got {value!r}")


def _size(term: nn.Module, name: str) -> int:
    value = _declared(term, name, getattr(LossTerm, name))
    return check_count(_where(term, name), value)


def _taps(term: nn.Module, name: str) -> tuple[str, ...]:
    value = _declared(term, name, getattr(LossTerm, name))
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or not all(isinstance(tap, str) for tap in value)
    ):
        raise ValueError(f"{_where(term, name)} must be a list of tap names (str), got {value!r}")
    return tuple(value)
