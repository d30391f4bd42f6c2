"""A weighted sum of named loss terms, the shape every ``conf/loss/*.yaml`` takes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from srdistill.losses.adversarial import GeneratorAdversarialLoss
from srdistill.losses.context import StepContext


class WeightedLoss(nn.Module):
    """``total = sum_k weight_k * term_k(ctx)``; terms with weight 0 are not built into the sum.

    ``terms`` maps a name to ``{"weight": float, "loss": nn.Module}``; each loss takes a
    ``StepContext``. Term modules (projection heads, temperature) are submodules, so their
    parameters train with the student.

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
        return any(getattr(term, "needs_teacher", False) for term in self.terms.values())

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
        return [name for name, t in self.terms.items() if getattr(t, "runs_teacher", False)]

    @property
    def needs_discriminator(self) -> bool:
        return any(isinstance(term, GeneratorAdversarialLoss) for term in self.terms.values())

    @property
    def min_batch_size(self) -> int:
        """The smallest batch every term works with (image-level InfoNCE needs two)."""
        return max((getattr(t, "min_batch_size", 1) for t in self.terms.values()), default=1)

    @property
    def min_hr_patch_size(self) -> int:
        """The smallest HR training patch every term works with (patch-level windows)."""
        return max((getattr(t, "min_hr_patch_size", 1) for t in self.terms.values()), default=1)

    def _taps(self, side: str) -> list[str]:
        names: dict[str, None] = {}
        for term in self.terms.values():
            names.update(dict.fromkeys(getattr(term, f"{side}_taps", ())))
        return list(names)

    @property
    def student_taps(self) -> list[str]:
        """Intermediate features of the student some term reads (``ctx.feats_s``)."""
        return self._taps("student")

    @property
    def teacher_taps(self) -> list[str]:
        """Intermediate features of the teacher some term reads (``ctx.feats_t``)."""
        return self._taps("teacher")

    def forward(
        self, ctx: StepContext, names: Sequence[str] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and the unweighted value of every term (for logging); only the terms
        ``names`` (one step group) when given."""
        terms = {name: self.terms[name] for name in (self.terms if names is None else names)}
        values = {name: term(ctx) for name, term in terms.items()}
        total = sum(self.weights[name] * value for name, value in values.items())
        for name, term in terms.items():
            for sub, value in getattr(term, "last_terms", {}).items():
                values[f"{name}/{sub}"] = value
        return total, values
