"""A weighted sum of named loss terms, the shape every ``conf/loss/*.yaml`` takes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from srdistill.losses.context import StepContext
from srdistill.losses.term import TermContract, logged_values_of
from srdistill.models.taps import check_taps


class WeightedLoss(nn.Module):
    """``total = sum_k weight_k * term_k(ctx)``; terms with weight 0 are not built into the sum.

    ``terms`` maps a name to ``{"weight": float, "loss": nn.Module}``; each loss takes a
    ``StepContext``. Term modules (projection heads, temperature) are submodules, so their
    parameters train with the student. What each term needs is read once into
    ``contracts`` (``srdistill.losses.term``); everything below derives from them.

    ``step_groups`` (e.g. ``[[rec, resp], [zoom_in, zoom_out]]``, DUKD's two-step update) splits
    the terms into groups that the module minimises one after the other, one optimizer step
    each; every term must be in exactly one group. None: one group, one step on the sum.
    """

    def __init__(
        self, terms: Mapping[str, Mapping], step_groups: Sequence[Sequence[str]] | None = None
    ) -> None:
        super().__init__()
        active = {name: term for name, term in terms.items() if float(term["weight"]) != 0.0}
        if not active:
            raise ValueError("loss.terms is empty: give at least one term, e.g. rec")
        self.terms = nn.ModuleDict({name: term["loss"] for name, term in active.items()})
        self.weights = {name: float(term["weight"]) for name, term in active.items()}
        self.contracts = {name: _contract(name, term) for name, term in self.terms.items()}
        self.step_groups = self._groups(step_groups, list(terms))

    def _groups(self, step_groups, known: list[str]) -> list[list[str]]:
        """The groups of active terms (terms with weight 0 dropped, then empty groups)."""
        if step_groups is None:
            return [list(self.terms)]
        listed = [name for group in step_groups for name in group]
        unknown = sorted(set(listed) - set(known))
        if unknown:
            raise ValueError(f"loss.step_groups names {unknown}, which are not in loss.terms")
        repeated = sorted({name for name in listed if listed.count(name) > 1})
        missing = [name for name in known if name not in listed]
        if repeated or missing:
            raise ValueError(
                f"loss.step_groups must hold every term of loss.terms exactly once "
                f"(repeated: {repeated}, missing: {missing}); or set loss.step_groups=null"
            )
        groups = [[name for name in group if name in self.terms] for group in step_groups]
        return [group for group in groups if group]

    @property
    def needs_teacher(self) -> bool:
        return any(c.needs_teacher for c in self.contracts.values())

    @property
    def reads_teacher_outputs_only(self) -> bool:
        """Whether every teacher-reading term needs only the teacher's SR output (``ctx.sr_t``),
        so a precomputed output (the teacher-output cache) can stand in for the teacher.

        Terms that read teacher features (taps) or run the teacher on inputs of their own
        (``runs_teacher = True``: DUKD, MiPKD) need the teacher online."""
        return self.needs_teacher and not self.teacher_taps and not self.teacher_runners

    @property
    def teacher_runners(self) -> list[str]:
        """Terms that run the teacher network themselves (on inputs of their own)."""
        return [name for name, c in self.contracts.items() if c.runs_teacher]

    @property
    def needs_discriminator(self) -> bool:
        return any(c.adversarial for c in self.contracts.values())

    @property
    def min_batch_size(self) -> int:
        """The smallest batch every term works with (image-level InfoNCE needs two)."""
        return max((c.min_batch_size for c in self.contracts.values()), default=1)

    @property
    def min_hr_patch_size(self) -> int:
        """The smallest HR training patch every term works with (patch-level windows)."""
        return max((c.min_hr_patch_size for c in self.contracts.values()), default=1)

    @property
    def student_taps(self) -> list[str]:
        """Intermediate features of the student some term reads (``ctx.feats_s``)."""
        return _unique(tap for c in self.contracts.values() for tap in c.student_taps)

    @property
    def teacher_taps(self) -> list[str]:
        """Intermediate features of the teacher some term reads (``ctx.feats_t``)."""
        return _unique(tap for c in self.contracts.values() for tap in c.teacher_taps)

    def reads_student_output(self, names: Sequence[str]) -> bool:
        """Whether any of the terms ``names`` reads the student's outputs (``ctx.sr_s``,
        ``ctx.feats_s``), so they must be recomputed for it after an earlier group's step."""
        return any(self.contracts[name].reads_student_output for name in names)

    def check_networks(self, student, teacher, discriminator) -> None:
        """Fail at construction, not mid-step, when a term asks for what the networks lack."""
        if self.needs_teacher and teacher is None:
            raise ValueError(
                "the loss uses the teacher but no teacher was given (backbone/teacher)"
            )
        if self.needs_discriminator and discriminator is None:
            raise ValueError("the loss has an adversarial term but loss.discriminator is null")
        check_taps(student, self.student_taps, "student")
        check_taps(teacher, self.teacher_taps, "teacher")

    def forward(
        self, ctx: StepContext, names: Sequence[str] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and the unweighted value of every term, plus each term's logged
        values as ``<term>/<key>`` (for logging); only the terms ``names`` (one step group)
        when given."""
        terms = {name: self.terms[name] for name in (self.terms if names is None else names)}
        values = {name: term(ctx) for name, term in terms.items()}
        total = sum(self.weights[name] * value for name, value in values.items())
        for name, term in terms.items():
            for key, value in logged_values_of(term, self.contracts[name]).items():
                values[f"{name}/{key}"] = value
        return total, values

    def step_metrics(self) -> dict[str, torch.Tensor]:
        """Every term's ``step_metrics()`` (its state after the optimizer step: MCAD-KD's
        temperature), logged under ``train/<key>``."""
        metrics: dict[str, torch.Tensor] = {}
        for name, term in self.terms.items():
            if self.contracts[name].has_step_metrics:
                metrics.update(term.step_metrics())
        return metrics


def _contract(name: str, term: nn.Module) -> TermContract:
    try:
        return TermContract.of(term)
    except ValueError as err:
        raise ValueError(f"loss.terms.{name}: {err}") from None


def _unique(names: Iterable[str]) -> list[str]:
    """``names`` in first-seen order, each once."""
    return list(dict.fromkeys(names))
