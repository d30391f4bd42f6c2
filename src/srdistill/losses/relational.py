"""RKD (Park et al., CVPR 2019): match the distances and angles between the samples of a batch.

Each sample's feature map at a tap, flattened, is its embedding. Distances are divided by their
mean over pairs (each network its own), angles are cosines at a vertex; both sides are compared
with a smooth L1 (delta 1). Everything is computed from the batch Gram matrix, so no (B, B, D)
difference tensor is built: ``<e_i - e_j, e_k - e_j> = G_ik - G_ij - G_jk + G_jj``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from srdistill.losses.feature import PairedTapLoss


def _embeddings(feat: torch.Tensor, pool_size: int | None) -> torch.Tensor:
    if pool_size is not None:
        feat = F.adaptive_avg_pool2d(feat, pool_size)
    flat = feat.flatten(1).float()
    # distances and angles ignore translation; centring keeps the Gram matrix well conditioned
    return flat - flat.mean(0, keepdim=True)


def _distances(gram: torch.Tensor, eps: float) -> torch.Tensor:
    sq = gram.diagonal().unsqueeze(0) + gram.diagonal().unsqueeze(1) - 2 * gram
    return sq.clamp_min(eps).sqrt()


def distance_relation(emb: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``||e_i - e_j|| / mu`` for the B(B-1) ordered pairs i != j (mu = their mean)."""
    n = emb.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=emb.device)
    dist = _distances(emb @ emb.T, eps)[off]
    return dist / dist.mean().clamp_min(eps)


def angle_relation(emb: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``cos`` of the angle at vertex j between e_i and e_k, for all distinct (i, j, k)."""
    gram = emb @ emb.T
    dist = _distances(gram, eps)
    diag = gram.diagonal()
    # inner[i, j, k] = <e_i - e_j, e_k - e_j>
    inner = gram.unsqueeze(1) - gram.unsqueeze(2) - gram.unsqueeze(0) + diag.view(1, -1, 1)
    cos = inner / (dist.unsqueeze(2) * dist.T.unsqueeze(0)).clamp_min(eps)
    n = emb.shape[0]
    idx = torch.arange(n, device=emb.device)
    distinct = (
        (idx.view(-1, 1, 1) != idx.view(1, -1, 1))
        & (idx.view(1, -1, 1) != idx.view(1, 1, -1))
        & (idx.view(-1, 1, 1) != idx.view(1, 1, -1))
    )
    return cos[distinct]


class RelationalKDLoss(PairedTapLoss):
    """``sum_k [w_d L_D + w_a L_A]`` on the paired taps (dimensions may differ between nets)."""

    def __init__(
        self,
        taps_s: Sequence[str],
        taps_t: Sequence[str],
        distance_weight: float = 25.0,
        angle_weight: float = 50.0,
        pool_size: int | None = None,
    ) -> None:
        super().__init__(taps_s, taps_t)
        self.distance_weight, self.angle_weight = float(distance_weight), float(angle_weight)
        self.pool_size = pool_size

    @property
    def min_batch_size(self) -> int:
        """Pairs need two images, triplets (the angle term) three."""
        return 3 if self.angle_weight else 2

    def pair_loss(self, index: int, feat_s: torch.Tensor, feat_t: torch.Tensor) -> torch.Tensor:
        if feat_s.shape[0] < self.min_batch_size:
            raise ValueError(
                f"RKD compares the images of a batch: it needs batch_size >= "
                f"{self.min_batch_size}, got {feat_s.shape[0]}"
            )
        emb_s, emb_t = _embeddings(feat_s, self.pool_size), _embeddings(feat_t, self.pool_size)
        loss = feat_s.new_zeros(())
        if self.distance_weight:
            d_s, d_t = distance_relation(emb_s), distance_relation(emb_t)
            loss = loss + self.distance_weight * F.smooth_l1_loss(d_s, d_t)
        if self.angle_weight:
            a_s, a_t = angle_relation(emb_s), angle_relation(emb_t)
            loss = loss + self.angle_weight * F.smooth_l1_loss(a_s, a_t)
        return loss
