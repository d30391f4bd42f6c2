"""MiPKD (Li et al., ICLR 2025): multi-granularity mixture of priors.

At every paired tap k, encoders E_T^k and E_S^k map the teacher's and the student's features into
a shared latent space, where a random binary mask I mixes them:
``z^k = I * E_T^k(F_T^k) + (1 - I) * E_S^k(F_S^k)``. A decoder D^k maps the mixture back to the
teacher's features (feature prior mixer); a second decoder D_S^k maps it to the student's width so
that the mixture can also continue through the student (block prior mixer). No official code was
published: the layer shapes, the mask and the routing are the choices of the baselines spec
(Sec. 9), each an option here.

Feature scale. The paper's networks (BasicSR EDSR/RCAN/SwinIR, teacher and student of one family)
hand the mixer raw features of comparable size on both sides, and "the reconstructed feature
propagates" through the block prior mixer (abstract): the block path feeds D^k(z^k), the
decoder's reconstruction of F_T^k, into the later layers. Default-initialised convs on raw
features give a reconstruction proportional to the features (biases <= 1/sqrt(9 C) are small
next to them), so from the first step it enters the teacher at the teacher's feature scale. In
a pair of two families the sides differ by orders of magnitude (the released SPAN ch28's taps:
RMS 0.15-1, the SPAB gate shrinks them; the demo EDSR student's: 33-54), and scaling both by one
pixel range (``pixel_range``: encoders read F / 255, the reconstruction is D(z) x 255, i.e.
every bias x 255) fed that teacher 10-70x the RMS of its own features at initialisation (mini
Tab. 3 pair): L_block ~30 against an L1 of ~0.03. ``feature_norm=rms`` (default) divides each
side's feature at each tap by its root mean square over the batch (detached) and multiplies the
reconstruction by the same number of the network it stands for: the mixer sees both sides at
unit scale, as the paper's mixer saw one family's features, and the untrained block path feeds
either network 0.05-0.08x the RMS of its own feature on that pair. Only the mixer's
parametrisation changes: L_feat and L_ae stay in the units of ``feature_scale`` (the baselines
spec's choice, as for FitNet), so the weights keep their meaning. The paper states no
normalisation, initialisation or warm-up of the mixer: this is an inference from its
formulation, not a released setting.
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
FEATURE_NORMS = ("rms", "pixel_range")


def conv_relu_conv(in_channels: int, mid_channels: int, out_channels: int) -> nn.Sequential:
    """conv3x3 - ReLU - conv3x3, resolution kept (the encoders' and decoders' shape)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid_channels, out_channels, 3, padding=1),
    )


def feature_rms(feature: torch.Tensor) -> torch.Tensor:
    """The root mean square of a feature over the batch, detached; 1 for an all-zero feature."""
    rms = feature.detach().float().pow(2).mean().sqrt()
    return torch.where(rms > 0, rms, torch.ones_like(rms))


class MixtureOfPriorsLoss(PairedTapLoss):
    """``feat_weight * L_feat + ae_weight * L_ae + block_weight * L_block`` on the paired taps.

    With the reconstructions ``R^k = D^k(z^k) * s_T^k`` (from a mixture) and
    ``A^k = D^k(E_T^k(F_T^k / s_T^k)) * s_T^k`` (teacher only), in the teacher's feature units:

    - ``L_feat = sum_k mean |R^k - F_T^k| / feature_scale`` (D reconstructs the teacher from a
      mixture);
    - ``L_ae = sum_k mean |A^k - F_T^k| / feature_scale`` (auxiliary auto-encoder);
    - ``L_block = mean |O_mix - O_T|``: one tap k (uniform) and one route R (Bernoulli 0.5) per
      step; R = teacher feeds ``R^k`` into the frozen teacher's layers after its tap k,
      R = student feeds ``D_S^k(z^k) * s_S^k`` into the student's layers after its tap k.

    The encoders read ``F_S^k / s_S^k`` and ``F_T^k / s_T^k``. ``feature_norm`` sets the scales:
    ``rms`` (default) each feature's root mean square over the batch, detached (see the module
    docstring); ``pixel_range`` the backbone's internal pixel range ``feature_scale`` on both
    sides (255 for EDSR/RCAN/SPAN, 1 for SwinIR), the form before ``rms``, kept to reproduce
    its numbers. ``mask_prob`` is P(I = 1), the share of the latent taken from the teacher; the
    mask is drawn per latent element (sample, channel, position) every step. The mask, the tap
    and the route come from torch's global RNG, so a seed reproduces them; ``force_tap`` /
    ``force_route`` pin the block path. ``ae_weight`` null = ``feat_weight``. The unweighted
    values are its ``logged_values()`` (feat, ae, block).
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
        feature_norm: str = "rms",
    ) -> None:
        super().__init__(taps_s, taps_t)
        latent = teacher_channels if latent_channels is None else int(latent_channels)
        self._check_options(feature_scale, latent, mask_prob, force_tap, force_route, feature_norm)
        self.feature_scale, self.mask_prob = float(feature_scale), float(mask_prob)
        self.feature_norm = feature_norm
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

    def _check_options(
        self, feature_scale, latent, mask_prob, force_tap, force_route, feature_norm
    ) -> None:
        if feature_scale <= 0 or latent < 1 or not 0.0 <= mask_prob <= 1.0:
            raise ValueError(
                f"mipkd needs feature_scale > 0, latent_channels >= 1 and 0 <= mask_prob <= 1, "
                f"got {feature_scale}, {latent} and {mask_prob}"
            )
        if feature_norm not in FEATURE_NORMS:
            raise ValueError(
                f"mipkd feature_norm must be one of {FEATURE_NORMS}, got {feature_norm!r}"
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

    def scales(self, feat_s: torch.Tensor, feat_t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(s_S, s_T)`` of one tap pair (``feature_norm``)."""
        if self.feature_norm == "rms":
            return feature_rms(feat_s), feature_rms(feat_t)
        scale = torch.tensor(self.feature_scale, device=feat_t.device)
        return scale, scale

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

    def block_loss(
        self,
        ctx: StepContext,
        k: int,
        route: str,
        z: torch.Tensor,
        scales: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """``mean |O_mix - O_T|`` with the mixture of tap ``k`` continuing through ``route``;
        ``scales``: that tap's ``(s_S, s_T)``.

        ``forward_replacing`` runs the network's layers before the tap again and discards their
        result: wasted compute, but the same output as running only the later layers. The
        teacher's parameters stay frozen (requires_grad False, so they get no gradient), while
        its activations carry the gradient back into the mixer and the student's features.
        """
        if ctx.teacher is None or ctx.student is None:
            raise RuntimeError("mipkd's block path runs the networks: the context needs both")
        if route == "teacher":
            net, tap, decoder, feats = ctx.teacher, self.teacher_taps[k], self.dec_t[k], ctx.feats_t
            scale = scales[1]
        else:
            net, tap, decoder, feats = ctx.student, self.student_taps[k], self.dec_s[k], ctx.feats_s
            scale = scales[0]
        feature = (decoder(z) * scale).to(feats[tap].dtype)
        out = forward_replacing(net, ctx.lq, tap, feature)
        return F.l1_loss(out.float(), ctx.teacher_output().detach().float())

    def forward(self, ctx: StepContext) -> torch.Tensor:
        feat_losses, ae_losses, latents, tap_scales = [], [], [], []
        for k, (feat_s, feat_t) in enumerate(self.pairs(ctx)):
            dtype = self.enc_t[k][0].weight.dtype
            scale_s, scale_t = self.scales(feat_s, feat_t)
            latent_t = self.enc_t[k]((feat_t / scale_t).to(dtype))
            z = self._mixed_latent(k, (feat_s / scale_s).to(dtype), latent_t)
            # both reconstructions in the teacher's units, compared in feature_scale's
            target = feat_t / self.feature_scale
            unit = scale_t / self.feature_scale
            feat_losses.append(F.l1_loss(self.dec_t[k](z).float() * unit, target))
            ae_losses.append(F.l1_loss(self.dec_t[k](latent_t).float() * unit, target))
            latents.append(z)
            tap_scales.append((scale_s, scale_t))
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
            block = self.block_loss(ctx, k, route, latents[k], tap_scales[k])
            self.last_values["block"] = block
            total = total + self.block_weight * block
        return total

    def logged_values(self) -> dict[str, torch.Tensor]:
        return self.last_values
