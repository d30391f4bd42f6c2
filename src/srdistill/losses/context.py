"""What a loss term may read during one generator step."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class StepContext:
    """Batch, outputs and the models of one step; loss terms read what they need.

    ``sr_t`` and ``feats_t`` are computed by the module only when a term declares
    ``needs_teacher``; ``discriminator`` is set for adversarial terms (the contract:
    ``srdistill.losses.term``). ``student`` and
    ``teacher`` are there for terms that run the networks on inputs of their own (DUKD's
    upcycled data, MiPKD's block path); the teacher is frozen, and a term must not let its
    parameters receive gradients.
    """

    lq: torch.Tensor
    gt: torch.Tensor
    sr_s: torch.Tensor
    sr_t: torch.Tensor | None = None
    feats_s: dict[str, torch.Tensor] = field(default_factory=dict)
    feats_t: dict[str, torch.Tensor] = field(default_factory=dict)
    discriminator: nn.Module | None = None
    student: nn.Module | None = None
    teacher: nn.Module | None = None

    def teacher_output(self) -> torch.Tensor:
        if self.sr_t is None:
            raise RuntimeError("this loss term needs the teacher output; set needs_teacher = True")
        return self.sr_t
