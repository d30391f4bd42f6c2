"""CSD's contrastive term (Wang et al., IJCAI 2021), with a separate frozen teacher.

In a frozen VGG-19's feature space the student's output O_S (the anchor) is pulled towards the
teacher's output O_T (the positive) and pushed away from bicubic upsamplings of LR images of the
batch (the negatives):

    L_CL = sum_i w_i * D_pos,i / (D_neg,i + eps)
    D_pos,i = mean |phi_i(O_T) - phi_i(O_S)|
    D_neg,i = sum_k mean |phi_i(N_k) - phi_i(O_S)|     (each N_k against every anchor)

phi_i = VGG-19 cut after relu1_1 ... relu5_1, w = (1/32, 1/16, 1/8, 1/4, 1). The negatives are
the first K LR images of the batch, shared by all anchors (the original draws them in a random
order; the sum over k does not depend on it). Images are fed as ``rgb_range * x`` without
ImageNet normalisation, as the original code does. The original trains teacher and student as
one channel-split network and adds an L1 on the teacher; here the teacher is a separate frozen
network, so the term reads its output only (baselines spec Sec. 7).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from srdistill.losses.context import StepContext
from srdistill.losses.term import LossTerm
from srdistill.models.vgg import frozen_vgg19

CSD_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
# where conf/loss/csd.yaml puts this term's options, for error messages
OPTIONS = "loss.terms.cont.loss."
Embedding = Callable[[torch.Tensor], Sequence[torch.Tensor]]


class _SumOfL1ToNegatives(torch.autograd.Function):
    """``sum_k mean |negatives[k] - anchor|`` (broadcast over the anchor's batch) that keeps only
    the anchor and the negatives for backward, not one difference tensor per negative."""

    @staticmethod
    def forward(ctx, anchor: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(anchor, negatives)
        total = anchor.new_zeros((), dtype=torch.float32)
        for negative in negatives:
            total = total + (negative - anchor).abs().mean(dtype=torch.float32)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        anchor, negatives = ctx.saved_tensors
        sign = torch.zeros_like(anchor)
        for negative in negatives:
            sign -= torch.sign(negative - anchor)  # d|n - a|/da; 0 where equal, as abs does
        return sign * (grad / anchor.numel()).to(anchor.dtype), None


def sum_l1_to_negatives(anchor: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """``sum_k mean |negatives[k] - anchor|``; anchor (B, ...), negatives (K, ...) detached."""
    if negatives.shape[1:] != anchor.shape[1:]:
        raise ValueError(
            f"negatives {tuple(negatives.shape)} and anchors {tuple(anchor.shape)} differ"
        )
    return _SumOfL1ToNegatives.apply(anchor, negatives.detach())


def contrastive_ratio(
    embed: Embedding,
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    weights: Sequence[float] = CSD_LAYER_WEIGHTS,
    eps: float = 1e-7,
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """``sum_i w_i D_pos,i / (D_neg,i + eps)`` and the per-layer D_pos, D_neg (images as given;
    positive and negatives are detached)."""
    feats_a = embed(anchor)
    with torch.no_grad():
        feats_p, feats_n = embed(positive.detach()), embed(negatives.detach())
    if not len(feats_a) == len(feats_p) == len(feats_n) == len(weights):
        raise ValueError(f"{len(weights)} layer weights for {len(feats_a)} embedding layers")
    total = anchor.new_zeros((), dtype=torch.float32)
    d_pos, d_neg = [], []
    for w, fa, fp, fn in zip(weights, feats_a, feats_p, feats_n, strict=True):
        d_pos.append((fp - fa).abs().mean(dtype=torch.float32))
        d_neg.append(sum_l1_to_negatives(fa, fn))
        total = total + w * d_pos[-1] / (d_neg[-1] + eps)
    return total, d_pos, d_neg


def bicubic_negatives(lq: torch.Tensor, size: Sequence[int], count: int) -> torch.Tensor:
    """The first ``count`` LR images of the batch, bicubically upsampled to ``size``."""
    if lq.shape[0] < count:
        raise ValueError(
            f"CSD draws {count} negatives from the batch: it needs batch_size >= {count}, got "
            f"{lq.shape[0]} (or lower {OPTIONS}num_negatives)"
        )
    return F.interpolate(lq[:count], size=tuple(size), mode="bicubic", align_corners=False)


class ContrastiveSelfDistillationLoss(LossTerm):
    """CSD's L_CL: student output pulled to the teacher's, pushed from bicubic negatives.

    The VGG-19 (``embedding``: ``vgg19_random`` or ``vgg19_file`` with ``vgg19_path``) is held
    as non-persistent buffers: no parameter of this term trains, and none is saved; the mode is
    the ``embedding`` attribute and is logged when the term is built.
    """

    needs_teacher = True

    def __init__(
        self,
        num_negatives: int = 10,
        layer_weights: Sequence[float] = CSD_LAYER_WEIGHTS,
        embedding: str = "vgg19_random",
        vgg19_path: str | None = None,
        seed: int = 0,
        rgb_range: float = 255.0,
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        if int(num_negatives) < 1:
            raise ValueError(f"num_negatives={num_negatives}: give a positive number")
        if len(layer_weights) != 5:
            raise ValueError(f"layer_weights: give 5 (relu1_1 ... relu5_1), got {layer_weights}")
        self.num_negatives = int(num_negatives)
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.rgb_range, self.eps = float(rgb_range), float(eps)
        self.embedding = embedding
        self.vgg = frozen_vgg19(embedding, vgg19_path, seed, prefix=OPTIONS)
        self.last_values: dict[str, torch.Tensor] = {}

    # VGG-19 pools four times before relu5_1: smaller images leave it nothing to see
    min_hr_patch_size = 16

    @property
    def min_batch_size(self) -> int:
        """The negatives are LR images of the batch."""
        return self.num_negatives

    def forward(self, ctx: StepContext) -> torch.Tensor:
        negatives = bicubic_negatives(ctx.lq, ctx.sr_s.shape[-2:], self.num_negatives)
        scale = self.rgb_range
        total, d_pos, d_neg = contrastive_ratio(
            self.vgg,
            scale * ctx.sr_s,
            scale * ctx.teacher_output(),
            scale * negatives,
            self.layer_weights,
            self.eps,
        )
        self.last_values = {
            "d_pos": sum(w * d for w, d in zip(self.layer_weights, d_pos, strict=True)).detach(),
            "d_neg": sum(w * d for w, d in zip(self.layer_weights, d_neg, strict=True)).detach(),
        }
        return total

    def logged_values(self) -> dict[str, torch.Tensor]:
        return self.last_values
