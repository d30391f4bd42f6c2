"""A loss term of the user's own: distil the teacher's edges.

It subclasses srdistill's ``LossTerm``, which documents the contract and supplies a default for
every attribute the term does not declare; a plain ``nn.Module`` declaring the same attributes
would work as well. The network file stays free of srdistill; this file is srdistill-specific
anyway (it reads srdistill's step context).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srdistill.losses.context import StepContext
from srdistill.losses.term import LossTerm

# the 3x3 Sobel derivative along x (its transpose: along y), scaled to give a ramp its slope
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


def sobel_edges(image: torch.Tensor) -> torch.Tensor:
    """Horizontal and vertical Sobel gradients of every channel: (B, C, H, W) -> (B, 2C, H, W).

    Borders are replicated, so a flat image has no edges anywhere:

    >>> sobel_edges(torch.ones(1, 3, 4, 4)).abs().max().item()
    0.0
    >>> ramp = torch.arange(4.0).expand(1, 1, 4, 4)  # +1 per column
    >>> sobel_edges(ramp)[0, 0, 1:3, 1:3]
    tensor([[1., 1.],
            [1., 1.]])
    """
    if image.ndim != 4:
        raise ValueError(f"sobel_edges takes (B, C, H, W) images, got shape {tuple(image.shape)}")
    channels = image.shape[1]
    kernels = torch.stack([SOBEL_X, SOBEL_X.T]).to(image)  # (2, 3, 3)
    kernels = kernels.repeat(channels, 1, 1).unsqueeze(1)  # (2C, 1, 3, 3): x, y per channel
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kernels, groups=channels)


def edge_l1(sr_s: torch.Tensor, sr_t: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between the Sobel edges of two images of the same shape."""
    if sr_s.shape != sr_t.shape:
        raise ValueError(
            f"edge_l1 compares images of one shape, got {tuple(sr_s.shape)} and {tuple(sr_t.shape)}"
        )
    return (sobel_edges(sr_s) - sobel_edges(sr_t)).abs().mean()


class EdgeKD(LossTerm):
    """L1 between the Sobel edges of the student's and the teacher's SR outputs.

    Response KD (``resp``) matches pixels; this matches their gradients, which weighs the
    teacher's sharp detail more than its flat regions. It reads ``ctx.sr_s`` and ``ctx.sr_t``
    only, so a teacher-output cache (``teacher.cache=true``) serves it. Logged besides the loss:
    the mean edge strength of both outputs (``train/loss/<name>/student_edges``, ...).
    """

    needs_teacher = True

    def __init__(self) -> None:
        super().__init__()
        self._logged: dict[str, torch.Tensor] = {}

    def forward(self, ctx: StepContext) -> torch.Tensor:
        sr_t = ctx.teacher_output().detach()  # the teacher is a fixed target
        self._logged = {
            "student_edges": sobel_edges(ctx.sr_s.detach()).abs().mean(),
            "teacher_edges": sobel_edges(sr_t).abs().mean(),
        }
        return edge_l1(ctx.sr_s, sr_t)

    def logged_values(self) -> dict[str, torch.Tensor]:
        return self._logged
