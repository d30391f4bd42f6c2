"""MiPKD's mixture of priors: the mask's extremes, an identity mixer, hand-computed values, the
feature normalisation (scale invariance, the block path at each network's own feature scale),
where the gradients go (through the frozen teacher, never into it) and every backbone pair."""

import pytest
import torch
from hydra.utils import instantiate

from srdistill.cli.builders import build_loss
from srdistill.losses.context import StepContext
from srdistill.losses.mipkd import MixtureOfPriorsLoss
from srdistill.models.taps import TappableBackbone
from tests.helpers.configs import compose_config


def feature_context(feats_s, feats_t, **kwargs):
    z = torch.zeros(1, 3, 4, 4)
    return StepContext(lq=z, gt=z, sr_s=z, sr_t=z, feats_s=feats_s, feats_t=feats_t, **kwargs)


def feature_only(**kwargs):
    """Two taps, student 3 channels, teacher 5; no block path (it needs networks)."""
    return MixtureOfPriorsLoss(["a", "c"], ["b", "d"], 3, 5, block_weight=0.0, **kwargs)


def random_features():
    fs = {"a": torch.randn(2, 3, 6, 6), "c": torch.randn(2, 3, 6, 6)}
    ft = {"b": torch.randn(2, 5, 6, 6) * 255, "d": torch.randn(2, 5, 6, 6) * 255}
    return fs, ft


def test_full_mask_makes_feat_the_auto_encoder_loss():
    torch.manual_seed(0)
    loss = feature_only(mask_prob=1.0, feature_scale=255.0)
    loss(feature_context(*random_features()))
    assert loss.logged_values()["feat"].item() > 0
    torch.testing.assert_close(loss.logged_values()["feat"], loss.logged_values()["ae"])
    # a half mask mixes in the student, so the two differ
    half = feature_only(mask_prob=0.5, feature_scale=255.0)
    half.load_state_dict(loss.state_dict())
    half(feature_context(*random_features()))
    assert half.logged_values()["feat"].item() != pytest.approx(half.logged_values()["ae"].item())


@pytest.mark.parametrize(
    ("mask_prob", "silent", "heard"), [(0.0, "enc_t", "enc_s"), (1.0, "enc_s", "enc_t")]
)
def test_the_masked_out_encoder_gets_no_gradient_from_feat(mask_prob, silent, heard):
    torch.manual_seed(0)
    loss = feature_only(mask_prob=mask_prob, ae_weight=0.0)
    loss(feature_context(*random_features())).backward()
    for name, p in getattr(loss, silent).named_parameters():
        assert p.grad is not None and not p.grad.any(), name
    for module in (getattr(loss, heard), loss.dec_t):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_ae_weight_follows_feat_weight_unless_given():
    assert feature_only(feat_weight=2.0).ae_weight == 2.0
    assert feature_only(feat_weight=2.0, ae_weight=0.5).ae_weight == 0.5


class Stub(TappableBackbone):
    """``out = factor * feature at tap`` where the tap is the input itself."""

    def __init__(self, tap: str, factor: float) -> None:
        super().__init__()
        self.tap_names, self.factor = (tap,), factor

    def _forward(self, x, record):
        return self.factor * record(self.tap_names[0], x)


def constant_decoders(loss, teacher_value, student_value):
    """Every mixer conv weight 0: D gives teacher_value, D_S student_value, whatever z is."""
    with torch.no_grad():
        for p in loss.parameters():
            p.zero_()
        loss.dec_t[0][2].bias.fill_(teacher_value)
        loss.dec_s[0][2].bias.fill_(student_value)


def stub_context():
    """F_T = 4 and O_T = 0 everywhere, F_S = 1; student out = 3 x tap, teacher out = 2 x tap."""
    lq = torch.full((1, 1, 2, 2), 4.0)
    return StepContext(
        lq=lq,
        gt=lq,
        sr_s=lq,
        sr_t=torch.zeros_like(lq),
        feats_s={"s": torch.ones_like(lq)},
        feats_t={"t": lq},
        student=Stub("s", 3.0),
        teacher=Stub("t", 2.0),
    )


@pytest.mark.parametrize(("route", "block"), [("teacher", 2.0), ("student", 1.5)])
def test_by_hand(route, block):
    # pixel_range, s = 2 on both sides: F_T = 4 -> target 2; D = 0.5 -> L_feat = L_ae = 1.5.
    # teacher route: D * s = 1 at the tap, teacher out = 2 * 1 = 2, O_T = 0 -> L_block = 2;
    # student route: D_S * s = 0.5, student out = 3 * 0.5 = 1.5 -> L_block = 1.5.
    loss = MixtureOfPriorsLoss(
        ["s"],
        ["t"],
        1,
        1,
        feature_scale=2.0,
        block_weight=0.1,
        force_route=route,
        feature_norm="pixel_range",
    )
    constant_decoders(loss, 0.5, 0.25)
    total = loss(stub_context())
    assert loss.logged_values()["feat"].item() == pytest.approx(1.5)
    assert loss.logged_values()["ae"].item() == pytest.approx(1.5)
    assert loss.logged_values()["block"].item() == pytest.approx(block)
    assert total.item() == pytest.approx(3.0 + 0.1 * block)
    assert loss.last_block == (0, route)


@pytest.mark.parametrize(("route", "block"), [("teacher", 4.0), ("student", 0.75)])
def test_by_hand_rms(route, block):
    # rms: s_T = RMS(F_T) = 4, s_S = RMS(F_S) = 1. D = 0.5 -> reconstruction 0.5 * 4 = 2, in
    # feature_scale units |2 - 4| / 2 = 1 = L_feat = L_ae.
    # teacher route: 2 at the tap, teacher out = 2 * 2 = 4, O_T = 0 -> L_block = 4;
    # student route: D_S * s_S = 0.25, student out = 3 * 0.25 = 0.75 -> L_block = 0.75.
    loss = MixtureOfPriorsLoss(
        ["s"], ["t"], 1, 1, feature_scale=2.0, block_weight=0.1, force_route=route
    )
    constant_decoders(loss, 0.5, 0.25)
    total = loss(stub_context())
    assert loss.logged_values()["feat"].item() == pytest.approx(1.0)
    assert loss.logged_values()["ae"].item() == pytest.approx(1.0)
    assert loss.logged_values()["block"].item() == pytest.approx(block)
    assert total.item() == pytest.approx(2.0 + 0.1 * block)


@pytest.mark.parametrize(("scale_s", "scale_t"), [(1e3, 1.0), (1.0, 1e-3), (0.01, 50.0)])
def test_rms_mixer_is_invariant_to_the_student_scale_and_equivariant_to_the_teacher(
    scale_s, scale_t
):
    # The mixer reads unit-RMS features: scaling the student's features changes nothing,
    # scaling the teacher's scales its reconstruction, so L_feat and L_ae (in the teacher's
    # units) scale with it. Under pixel_range the biases break both.
    torch.manual_seed(0)
    loss = feature_only(feature_scale=255.0)
    fs, ft = random_features()
    torch.manual_seed(1)
    loss(feature_context(fs, ft))
    reference = {key: v.item() for key, v in loss.logged_values().items()}
    torch.manual_seed(1)
    loss(
        feature_context(
            {k: v * scale_s for k, v in fs.items()}, {k: v * scale_t for k, v in ft.items()}
        )
    )
    for key in ("feat", "ae"):
        expected = reference[key] * scale_t
        assert loss.logged_values()[key].item() == pytest.approx(expected, rel=1e-4), key


def network_pair(backbone="tiny", scale=2, **options):
    """A backbone pair (random weights, teacher frozen as the module freezes it) and its
    loss=mipkd mixer term, with ``options`` overriding the term's config."""
    cfg = compose_config("train", [f"backbone={backbone}", f"scale={scale}", "loss=mipkd"])
    for key, value in options.items():
        cfg.loss.terms.mix.loss[key] = value
    torch.manual_seed(0)
    student, teacher = instantiate(cfg.student.arch), instantiate(cfg.teacher.arch).eval()
    teacher.requires_grad_(False)
    return cfg, student, teacher, build_loss(cfg.loss).terms["mix"]


def run_context(taps, student, teacher, lq):
    """What the module hands the loss: student taps with grad, teacher's under no_grad;
    ``taps`` maps ``student`` and ``teacher`` to tap names (like ``cfg.kd_taps``)."""
    sr_s, feats_s = student.forward_intermediates(lq, list(taps["student"]))
    with torch.no_grad():
        sr_t, feats_t = teacher.forward_intermediates(lq, list(taps["teacher"]))
    return StepContext(
        lq=lq,
        gt=lq,
        sr_s=sr_s,
        sr_t=sr_t,
        feats_s=feats_s,
        feats_t=feats_t,
        student=student,
        teacher=teacher,
    )


def make_sign_split_identity(loss, k):
    """E_T^k(F) = [F, -F] (second conv identity); D^k: ReLU passes the non-negative latent
    and the last conv maps [a, b] -> a - b, so D^k(E_T^k(F)) == F for features of either sign
    (latent = 2 x teacher channels, centre taps only)."""
    c = loss.dec_t[k][2].out_channels
    eye, eye2 = torch.eye(c), torch.eye(2 * c)
    with torch.no_grad():
        for module in (loss.enc_t[k], loss.dec_t[k]):
            for conv in (module[0], module[2]):
                conv.weight.zero_()
                conv.bias.zero_()
        loss.enc_t[k][0].weight[:, :, 1, 1] = torch.cat([eye, -eye])
        loss.enc_t[k][2].weight[:, :, 1, 1] = eye2
        loss.dec_t[k][0].weight[:, :, 1, 1] = eye2
        loss.dec_t[k][2].weight[:, :, 1, 1] = torch.cat([eye, -eye], dim=1)


@pytest.mark.parametrize("k", [0, 1])
def test_identity_mixer_routed_to_the_teacher_reproduces_its_output(k):
    # tiny pair: teacher taps have 32 channels
    options = {"latent_channels": 64, "mask_prob": 1.0, "force_route": "teacher", "force_tap": k}
    cfg, student, teacher, loss = network_pair(**options)
    ctx = run_context(cfg.kd_taps, student, teacher, torch.rand(2, 3, 8, 8))
    loss(ctx)
    # a random mixer changes the teacher's output
    assert loss.logged_values()["block"].item() > 1e-3
    make_sign_split_identity(loss, k)
    loss(ctx)
    assert loss.logged_values()["block"].item() == pytest.approx(0.0, abs=1e-6)
    tap = cfg.kd_taps.teacher[k]
    mixed = loss.dec_t[k](loss.enc_t[k](ctx.feats_t[tap] / 255.0)) * 255.0
    torch.testing.assert_close(teacher.forward_replacing(ctx.lq, tap, mixed), ctx.sr_t)


@pytest.mark.parametrize("route", ["teacher", "student"])
def test_block_path_trains_the_mixer_and_student_through_the_frozen_teacher(route):
    # block path only, all latent from the student: the student's first layer can only get a
    # gradient through D^k (D_S^k) and the network layers after tap k
    options = {"mask_prob": 0.0, "feat_weight": 0.0, "ae_weight": 0.0, "force_route": route}
    cfg, student, teacher, loss = network_pair(**options, force_tap=0)
    loss(run_context(cfg.kd_taps, student, teacher, torch.rand(2, 3, 8, 8))).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.conv_first.weight.grad.abs().sum() > 0
    decoder, unused = (loss.dec_t, loss.dec_s) if route == "teacher" else (loss.dec_s, loss.dec_t)
    for module in (loss.enc_s[0], decoder[0]):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    # the other decoder and the other tap's modules are not on this path (0 x L_feat may
    # leave zero gradients on them)
    for p in [*unused.parameters(), *loss.enc_s[1].parameters(), *loss.enc_t.parameters()]:
        assert p.grad is None or not p.grad.any()


def test_every_module_and_the_student_get_gradients_and_the_teacher_none():
    cfg, student, teacher, loss = network_pair()
    ctx = run_context(cfg.kd_taps, student, teacher, torch.rand(2, 3, 8, 8))
    for seed in range(8):  # enough draws to take both routes and both taps
        torch.manual_seed(seed)
        loss(ctx).backward(retain_graph=True)
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.parameters())


def test_random_choices_follow_the_seed():
    cfg, student, teacher, loss = network_pair()
    ctx = run_context(cfg.kd_taps, student, teacher, torch.rand(2, 3, 8, 8))
    draws = {}
    for seed in range(12):
        torch.manual_seed(seed)
        value = loss(ctx).item()
        draws[seed] = (value, loss.last_block)
    torch.manual_seed(5)
    assert (loss(ctx).item(), loss.last_block) == draws[5]
    assert {block for _, block in draws.values()} == {
        (k, r) for k in (0, 1) for r in ("teacher", "student")
    }
    assert len({value for value, _ in draws.values()}) == len(draws)  # the mask differs too


def test_options_are_checked():
    with pytest.raises(ValueError, match="feature_norm"):
        feature_only(feature_norm="layer")
    with pytest.raises(ValueError, match="force_route"):
        feature_only(force_route="sideways")
    with pytest.raises(ValueError, match="force_tap"):
        feature_only(force_tap=2)
    with pytest.raises(ValueError, match="mask_prob"):
        feature_only(mask_prob=1.5)
    with pytest.raises(ValueError, match="same non-zero number"):
        MixtureOfPriorsLoss(["a"], [], 3, 5)


# the sample teacher is x4 only; the others are built at x2 to keep the forward small
@pytest.mark.parametrize(
    ("backbone", "scale"),
    [("sample", 4), ("edsr", 2), ("rcan", 2), ("swinir", 2), ("span", 2)],
)
def test_runs_on_every_backbone_pair(backbone, scale):
    cfg, student, teacher, loss = network_pair(backbone, scale)
    ctx = run_context(cfg.kd_taps, student, teacher, torch.rand(1, 3, 8, 8))
    assert [m[0].in_channels for m in loss.enc_s] == [cfg.kd_taps.student_channels] * len(
        loss.enc_s
    )
    assert [m[0].in_channels for m in loss.enc_t] == [cfg.kd_taps.teacher_channels] * len(
        loss.enc_t
    )
    for k in range(len(cfg.kd_taps.student)):
        for route in ("teacher", "student"):
            loss.force_tap, loss.force_route = k, route
            value = loss(ctx)
            assert torch.isfinite(value) and loss.logged_values()["block"] > 0, (k, route)
    value.backward()
    assert all(p.grad is None for p in teacher.parameters())


class GainNet(TappableBackbone):
    """conv -> tap ``feat`` (x ``gain``) -> conv, output independent of ``gain``: a network
    whose features live at the scale ``gain``; remembers the last replacement at its tap."""

    tap_names = ("feat",)

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain
        self.conv_in = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv_out = torch.nn.Conv2d(8, 3, 3, padding=1)
        self.replacement = None

    def _forward(self, x, record):
        return self.conv_out(record("feat", self.conv_in(x) * self.gain) / self.gain)

    def forward_replacing(self, x, tap, feature):
        self.replacement = feature
        return super().forward_replacing(x, tap, feature)


def rms(x):
    return x.detach().pow(2).mean().sqrt().item()


@pytest.mark.parametrize("route", ["teacher", "student"])
def test_at_initialisation_the_block_path_enters_each_network_at_its_own_feature_scale(route):
    # A pair of two families: the teacher's tap features ~1e4 times smaller than the student's
    # (like the released SPAN's 0.1-0.5 beside an EDSR student's 20-40). The mixer reads
    # unit-RMS features, so its default-initialised reconstruction is 0.06-0.1 x the RMS of the
    # feature it replaces, on either route and at any gain (asserted: within [0.01, 1]); with
    # one pixel range for both (the earlier form) the teacher got ~6000x its own features.
    torch.manual_seed(0)
    student, teacher = GainNet(100.0), GainNet(0.01).eval().requires_grad_(False)
    taps = {"student": ["feat"], "teacher": ["feat"]}
    ctx = run_context(taps, student, teacher, torch.rand(2, 3, 8, 8))
    net, own = (teacher, ctx.feats_t) if route == "teacher" else (student, ctx.feats_s)
    for seed in range(3):
        torch.manual_seed(seed)
        loss = MixtureOfPriorsLoss(["feat"], ["feat"], 8, 8, feature_scale=255.0, force_route=route)
        loss(ctx)
        assert 0.01 < rms(net.replacement) / rms(own["feat"]) < 1.0, seed
    torch.manual_seed(0)
    old = MixtureOfPriorsLoss(
        ["feat"],
        ["feat"],
        8,
        8,
        feature_scale=255.0,
        force_route="teacher",
        feature_norm="pixel_range",
    )
    old(ctx)
    assert rms(teacher.replacement) / rms(ctx.feats_t["feat"]) > 10.0
