"""FAKD (He et al., ICIP 2020): spatial-affinity distillation on paired student/teacher taps.

The affinity and its memory-bounded L1 are DSCLoRA's (``affinity.affinity_l1``); FAKD only pairs
taps by position, since its student and teacher taps may sit at different block indices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from srdistill.losses.affinity import affinity_l1
from srdistill.losses.feature import PairedTapLoss


class FeatureAffinityLoss(PairedTapLoss):
    """``L_SA = sum_k mean |A(F_S^k) - A(F_T^k)|``, A = cosine similarity of all position pairs."""

    def __init__(
        self, taps_s: Sequence[str], taps_t: Sequence[str], chunk_rows: int = 1024
    ) -> None:
        super().__init__(taps_s, taps_t)
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        self.chunk_rows = chunk_rows

    def pair_loss(self, index: int, feat_s: torch.Tensor, feat_t: torch.Tensor) -> torch.Tensor:
        return affinity_l1(feat_s, feat_t, self.chunk_rows)
