"""MCAD-KD's multi-scale contrastive distillation (image-level and patch-level InfoNCE).

Paper (default) vs. the authors' released code, each difference a named option:

- ``include_positive``: the paper's denominators sum over all candidates, the positive included
  (standard InfoNCE); the released code leaves the positive out (log-sum-exp over negatives).
- ``same_windows``: the paper cuts the same N windows from the student and teacher outputs; the
  released code draws them independently, so "positives" come from different places.
- ``patch_negatives``: ``"image"`` (paper: the other windows of the same image) or ``"batch"``
  (released: all B*N windows of the batch).
- ``head_depth``: ``"paper"`` (3x3 conv 3->d/2, ReLU, GAP, linear d/2->d, L2-normalise) or
  ``"released"`` for phi_patch (conv 3->d/4, ReLU, conv d/4->d/2, ReLU, GAP, linear d/2->d).
- ``learn_heads``: the paper trains heads and temperature end to end; the released code never
  gives them to an optimizer (fixed random embedding, tau fixed at 0.07).
- ``patch_reduction``: ``"mean"`` (default) averages over the N windows of an image, as the
  authors' code does (their weights were tuned with it); ``"sum"`` is Eq. 4's literal sum, N times
  stronger (docs/RESULTS.md measures both). Either way the loss is then averaged over images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from srdistill.losses.context import StepContext
from srdistill.losses.term import LossTerm

HEAD_DEPTHS = ("paper", "released")
PATCH_NEGATIVES = ("image", "batch")
PATCH_REDUCTIONS = ("sum", "mean")


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


class ProjectionHead(nn.Module):
    """Image -> L2-normalised d-dim embedding: conv(s) + ReLU, global average pool, linear."""

    def __init__(self, dim: int = 256, depth: str = "paper", in_chans: int = 3) -> None:
        super().__init__()
        _check("head_depth", depth, HEAD_DEPTHS)
        if depth == "paper":
            convs = [nn.Conv2d(in_chans, dim // 2, 3, padding=1), nn.ReLU(inplace=True)]
        else:
            convs = [
                nn.Conv2d(in_chans, dim // 4, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(dim // 4, dim // 2, 3, padding=1),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*convs, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(dim // 2, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(self.features(x)), dim=-1)


class LearnedTemperature(nn.Module):
    """tau > 0, learned as log(1/tau) and clamped to [1/100, 1] (CLIP-style)."""

    def __init__(self, init: float = 0.07, learnable: bool = True, min_tau: float = 0.01) -> None:
        super().__init__()
        if not 0 < init <= 1:
            raise ValueError(f"temperature init must be in (0, 1], got {init}")
        self.log_inv_tau = nn.Parameter(torch.tensor(math.log(1.0 / init)), requires_grad=learnable)
        self.max_log_inv = math.log(1.0 / min_tau)

    def forward(self) -> torch.Tensor:
        return 1.0 / self.log_inv_tau.clamp(0.0, self.max_log_inv).exp()


def info_nce(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    tau: torch.Tensor,
    include_positive: bool = True,
) -> torch.Tensor:
    """Per-anchor InfoNCE; anchor i's positive is candidate i, the other candidates negatives.

    Inputs are L2-normalised (M, d); returns (M,). With ``include_positive=False`` the
    denominator holds the negatives only.

    >>> z = torch.eye(2)
    >>> round(float(info_nce(z, z, torch.tensor(1.0))[0]), 4)  # -log(e / (e + 1))
    0.3133
    """
    if anchors.shape != candidates.shape or anchors.shape[0] < 2:
        raise ValueError(
            f"info_nce needs two matching sets of at least 2 embeddings (negatives), got "
            f"{tuple(anchors.shape)} and {tuple(candidates.shape)}"
        )
    logits = anchors @ candidates.T / tau
    positive = logits.diagonal()
    if not include_positive:
        eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(eye, float("-inf"))
    return torch.logsumexp(logits, dim=1) - positive


def sample_windows(
    batch: int,
    height: int,
    width: int,
    count: int,
    size: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(batch, count, 2) random top-left corners of ``size`` x ``size`` windows inside the image."""
    if size > height or size > width:
        raise ValueError(
            f"patch windows of {size}x{size} do not fit SR outputs of {height}x{width}; "
            "use a larger training patch (HR patch >= window size) or a smaller patch_size"
        )
    tops = torch.randint(0, height - size + 1, (batch, count), generator=generator)
    lefts = torch.randint(0, width - size + 1, (batch, count), generator=generator)
    return torch.stack([tops, lefts], dim=-1)


def crop_windows(images: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """Cut windows at ``corners`` (B, N, 2) from ``images`` (B, C, H, W): (B*N, C, size, size)."""
    crops = [
        images[b, :, top : top + size, left : left + size]
        for b in range(corners.shape[0])
        for top, left in corners[b].tolist()
    ]
    return torch.stack(crops)


def patch_info_nce(
    u_s: torch.Tensor,
    u_t: torch.Tensor,
    tau: torch.Tensor,
    include_positive: bool = True,
    negatives: str = "image",
    reduction: str = "mean",
) -> torch.Tensor:
    """Eq. 4 on window embeddings (B, N, d): per image, mean (or sum) over its N windows."""
    _check("patch_negatives", negatives, PATCH_NEGATIVES)
    _check("patch_reduction", reduction, PATCH_REDUCTIONS)
    b, n, d = u_s.shape
    if negatives == "image":
        per_window = torch.stack(
            [info_nce(u_s[i], u_t[i], tau, include_positive) for i in range(b)]
        )
    else:
        per_window = info_nce(u_s.reshape(b * n, d), u_t.reshape(b * n, d), tau, include_positive)
        per_window = per_window.view(b, n)
    per_image = per_window.sum(dim=1) if reduction == "sum" else per_window.mean(dim=1)
    return per_image.mean()


class MultiScaleContrastiveLoss(LossTerm):
    """L_cont = w_img * L_img + w_patch * L_patch on SR outputs (see module docstring).

    Logs the two scales (``img``, ``patch``, unweighted) and the temperature (``tau``).
    """

    needs_teacher = True

    def __init__(
        self,
        img_weight: float = 0.3,
        patch_weight: float = 0.7,
        dim: int = 256,
        num_patches: int = 8,
        patch_size: int = 48,
        tau_init: float = 0.07,
        include_positive: bool = True,
        same_windows: bool = True,
        patch_negatives: str = "image",
        patch_reduction: str = "mean",
        head_depth: str = "paper",
        learn_heads: bool = True,
    ) -> None:
        super().__init__()
        _check("patch_negatives", patch_negatives, PATCH_NEGATIVES)
        _check("patch_reduction", patch_reduction, PATCH_REDUCTIONS)
        self.img_weight, self.patch_weight = img_weight, patch_weight
        self.num_patches, self.patch_size = num_patches, patch_size
        self.include_positive, self.same_windows = include_positive, same_windows
        self.patch_negatives, self.patch_reduction = patch_negatives, patch_reduction
        self.img_head = ProjectionHead(dim, "paper") if img_weight else None
        self.patch_head = ProjectionHead(dim, head_depth) if patch_weight else None
        self.temperature = LearnedTemperature(tau_init, learnable=learn_heads)
        if not learn_heads:
            for p in self.parameters():
                p.requires_grad_(False)
        self.last_values: dict[str, torch.Tensor] = {}

    @property
    def min_batch_size(self) -> int:
        """Image-level negatives are the other images of the batch."""
        return 2 if self.img_weight else 1

    @property
    def min_hr_patch_size(self) -> int:
        """Patch windows are cut from the HR-sized outputs."""
        return self.patch_size if self.patch_weight else 1

    def image_loss(self, sr_s: torch.Tensor, sr_t: torch.Tensor) -> torch.Tensor:
        if sr_s.shape[0] < 2:
            raise ValueError(
                "image-level InfoNCE needs batch size >= 2 (negatives come from the "
                "batch); raise batch_size or set img_weight=0"
            )
        z_s, z_t = self.img_head(sr_s), self.img_head(sr_t)
        return info_nce(z_s, z_t, self.temperature(), self.include_positive).mean()

    def patch_loss(self, sr_s: torch.Tensor, sr_t: torch.Tensor) -> torch.Tensor:
        b, _, h, w = sr_s.shape
        corners_s = sample_windows(b, h, w, self.num_patches, self.patch_size)
        corners_t = (
            corners_s
            if self.same_windows
            else sample_windows(b, h, w, self.num_patches, self.patch_size)
        )
        u_s = self.patch_head(crop_windows(sr_s, corners_s, self.patch_size))
        u_t = self.patch_head(crop_windows(sr_t, corners_t, self.patch_size))
        return patch_info_nce(
            u_s.view(b, self.num_patches, -1),
            u_t.view(b, self.num_patches, -1),
            self.temperature(),
            self.include_positive,
            self.patch_negatives,
            self.patch_reduction,
        )

    def forward(self, ctx: StepContext) -> torch.Tensor:
        sr_t = ctx.teacher_output()
        total = ctx.sr_s.new_zeros(())
        self.last_values = {}
        if self.img_weight:
            self.last_values["img"] = self.image_loss(ctx.sr_s, sr_t)
            total = total + self.img_weight * self.last_values["img"]
        if self.patch_weight:
            self.last_values["patch"] = self.patch_loss(ctx.sr_s, sr_t)
            total = total + self.patch_weight * self.last_values["patch"]
        return total

    def logged_values(self) -> dict[str, torch.Tensor]:
        return self.last_values

    def step_metrics(self) -> dict[str, torch.Tensor]:
        """The learned temperature after the step, ``train/tau``."""
        return {"tau": self.temperature().detach()}
