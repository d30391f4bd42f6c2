"""MiPKD (Li et al., ICLR 2025): multi-granularity mixture of priors.

At every paired tap k, encoders E_T^k and E_S^k map the teacher's and the student's features into
a shared latent space, where a random binary mask I mixes them:
``z^k = I * E_T^k(F_T^k) + (1 - I) * E_S^k(F_S^k)``. A decoder D^k maps the mixture back to the
teacher's features (feature prior mixer); a second decoder D_S^k maps it to the student's width so
that the mixture can also continue through the student (block prior mixer). No official code was
published: the layer shapes, the mask and the routing are the choices of the baselines spec
(Sec. 9), each an option here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from srdistill.losses.context import StepContext
from srdistill.losses.feature import PairedTapLoss
from srdistill.models.taps import forward_replacing

ROUTES = ("teacher", "student")


def conv_relu_conv(in_channels: int, mid_channels: int, out_channels: int) -> nn.Sequential:
    """conv3x3 - ReLU - conv3x3, resolution kept (the encoders' and decoders' shape)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid_channels, out_channels, 3, padding=1),
    )


class MixtureOfPriorsLoss(PairedTapLoss):
    """``feat_weight * L_feat + ae_weight * L_ae + block_weight * L_block`` on the paired taps.

    - ``L_feat = sum_k mean |D^k(z^k) - F_T^k / s|`` (D reconstructs the teacher from a mixture);
    - ``L_ae = sum_k mean |D^k(E_T^k(F_T^k / s)) - F_T^k / s|`` (auxiliary auto-encoder);
    - ``L_block = mean |O_mix - O_T|``: one tap k (uniform) and one route R (Bernoulli 0.5) per
      step; R = teacher feeds ``D^k(z^k) * s`` into the frozen teacher's layers after its tap k,
      R = student feeds ``D_S^k(z^k) * s`` into the student's layers after its tap k.

    ``s`` (``feature_scale``) is the backbone's internal pixel range (255 for EDSR/RCAN, 1 for
    SwinIR): features are divided by it before the mixer and the decoded features multiplied by
    it before they re-enter a network. ``mask_prob`` is P(I = 1), the share of the latent taken
    from the teacher; the mask is drawn per latent element (sample, channel, position) every
    step. The mask, the tap and the route come from torch's global RNG, so a seed reproduces
    them; ``force_tap`` / ``force_route`` pin the block path. ``ae_weight`` null = ``feat_weight``.
    The unweighted values are its ``logged_values()`` (feat, ae, block).
    """

    runs_teacher = True  # the block path runs the teacher's later layers on mixed features

    def __init__(
        self,
        taps_s: Sequence[str],
        taps_t: Sequence[str],
        student_channels: int,
        teacher_channels: int,
        feature_scale: float = 1.0,
        latent_channels: int | None = None,
        mask_prob: float = 0.5,
        feat_weight: float = 1.0,
        ae_weight: float | None = None,
        block_weight: float = 0.1,
        force_tap: int | None = None,
        force_route: str | None = None,
    ) -> None:
        super().__init__(taps_s, taps_t)
        latent = teacher_channels if latent_channels is None else int(latent_channels)
        self._check_options(feature_scale, latent, mask_prob, force_tap, force_route)
        self.feature_scale, self.mask_prob = float(feature_scale), float(mask_prob)
        self.feat_weight, self.block_weight = float(feat_weight), float(block_weight)
        self.ae_weight = self.feat_weight if ae_weight is None else float(ae_weight)
        self.force_tap, self.force_route = force_tap, force_route
        taps = range(len(self.student_taps))
        self.enc_t = nn.ModuleList(conv_relu_conv(teacher_channels, latent, latent) for _ in taps)
        self.enc_s = nn.ModuleList(conv_relu_conv(student_channels, latent, latent) for _ in taps)
        self.dec_t = nn.ModuleList(conv_relu_conv(latent, latent, teacher_channels) for _ in taps)
        self.dec_s = nn.ModuleList(conv_relu_conv(latent, latent, student_channels) for _ in taps)
        self.last_values: dict[str, torch.Tensor] = {}
        self.last_block: tuple[int, str] | None = None

    def _check_options(self, feature_scale, latent, mask_prob, force_tap, force_route) -> None:
        if feature_scale <= 0 or latent < 1 or not 0.0 <= mask_prob <= 1.0:
            raise ValueError(
                f"mipkd needs feature_scale > 0, latent_channels >= 1 and 0 <= mask_prob <= 1, "
                f"got {feature_scale}, {latent} and {mask_prob}"
            )
        if force_route not in (None, *ROUTES):
            raise ValueError(
                f"mipkd force_route must be null or one of {ROUTES}, got {force_route!r}"
            )
        if force_tap is not None and not 0 <= force_tap < len(self.student_taps):
            raise ValueError(
                f"mipkd force_tap must be null or a tap index in [0, {len(self.student_taps)}), "
                f"got {force_tap}"
            )

    def _mixed_latent(self, k: int, feat_s: torch.Tensor, latent_t: torch.Tensor) -> torch.Tensor:
        latent_s = self.enc_s[k](feat_s)
        mask = (torch.rand(latent_t.shape, device=latent_t.device) < self.mask_prob).to(
            latent_t.dtype
        )
        return mask * latent_t + (1 - mask) * latent_s

    def _draw_block(self) -> tuple[int, str]:
        k = self.force_tap
        if k is None:
            k = int(torch.randint(len(self.student_taps), ()))
        route = self.force_route
        if route is None:
            route = ROUTES[int(torch.randint(2, ()))]
        return k, route

    def block_loss(self, ctx: StepContext, k: int, route: str, z: torch.Tensor) -> torch.Tensor:
        """``mean |O_mix - O_T|`` with the mixture of tap ``k`` continuing through ``route``.

        ``forward_replacing`` runs the network's layers before the tap again and discards their
        result: wasted compute, but the same output as running only the later layers. The
        teacher's parameters stay frozen (requires_grad False, so they get no gradient), while
        its activations carry the gradient back into the mixer and the student's features.
        """
        if ctx.teacher is None or ctx.student is None:
            raise RuntimeError("mipkd's block path runs the networks: the context needs both")
        if route == "teacher":
            net, tap, decoder, feats = ctx.teacher, self.teacher_taps[k], self.dec_t[k], ctx.feats_t
        else:
            net, tap, decoder, feats = ctx.student, self.student_taps[k], self.dec_s[k], ctx.feats_s
        feature = (decoder(z) * self.feature_scale).to(feats[tap].dtype)
        out = forward_replacing(net, ctx.lq, tap, feature)
        return F.l1_loss(out.float(), ctx.teacher_output().detach().float())

    def forward(self, ctx: StepContext) -> torch.Tensor:
        feat_losses, ae_losses, latents = [], [], []
        for k, (feat_s, feat_t) in enumerate(self.pairs(ctx)):
            dtype = self.enc_t[k][0].weight.dtype
            feat_s = (feat_s / self.feature_scale).to(dtype)
            target = feat_t / self.feature_scale
            latent_t = self.enc_t[k](target.to(dtype))
            z = self._mixed_latent(k, feat_s, latent_t)
            feat_losses.append(F.l1_loss(self.dec_t[k](z).float(), target))
            ae_losses.append(F.l1_loss(self.dec_t[k](latent_t).float(), target))
            latents.append(z)
        # torch.stack keeps every per-tap loss in the graph
        self.last_values = {
            "feat": torch.stack(feat_losses).sum(),
            "ae": torch.stack(ae_losses).sum(),
        }
        total = (
            self.feat_weight * self.last_values["feat"] + self.ae_weight * self.last_values["ae"]
        )
        self.last_block = None
        if self.block_weight:
            k, route = self._draw_block()
            self.last_block = (k, route)
            self.last_values["block"] = self.block_loss(ctx, k, route, latents[k])
            total = total + self.block_weight * self.last_values["block"]
        return total

    def logged_values(self) -> dict[str, torch.Tensor]:
        return self.last_values
