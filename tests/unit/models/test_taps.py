"""Taps: named points and module paths on any network (``forward_with_taps``), running the rest
of a network on a feature of one's own (``forward_replacing``, MiPKD's block path), and
``conv_after_body``: the body's output before the global skip."""

import pytest
import torch
from torch import nn

from srdistill.models.backbones.edsr import EDSR
from srdistill.models.backbones.rcan import RCAN
from srdistill.models.backbones.span import SPAN
from srdistill.models.backbones.swinir import SwinIR
from srdistill.models.taps import check_taps, forward_replacing, forward_with_taps

NETWORKS = {
    "edsr": (lambda: EDSR(scale=2, num_feat=8, num_block=3), ["body.1", "conv_after_body"]),
    "rcan": (
        lambda: RCAN(scale=2, num_feat=8, num_group=2, num_block=1, squeeze_factor=4),
        ["body.0", "conv_after_body"],
    ),
    "swinir": (
        lambda: SwinIR(
            scale=2, embed_dim=12, depths=(1, 1), num_heads=(2, 2), window_size=4, img_size=16
        ),
        ["layers.0", "conv_after_body"],
    ),
    "span": (lambda: SPAN(scale=2, feature_channels=6), ["block_2", "conv_cat"]),
}


def _net(name):
    torch.manual_seed(0)
    return NETWORKS[name][0]().eval()


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_replacing_a_tap_by_its_own_feature_changes_nothing(name):
    net, x = _net(name), torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        out, feats = net.forward_intermediates(x, NETWORKS[name][1])
        for tap, feat in feats.items():
            assert torch.allclose(net.forward_replacing(x, tap, feat), out, atol=1e-6), tap


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_the_output_depends_on_the_replacement_and_its_gradient_reaches_it(name):
    net, x = _net(name), torch.rand(1, 3, 8, 8)
    tap = NETWORKS[name][1][0]
    _, feats = net.forward_intermediates(x, [tap])
    replacement = torch.randn_like(feats[tap]).requires_grad_()
    out = net.forward_replacing(x, tap, replacement)
    assert not torch.allclose(out, net(x))
    out.sum().backward()
    assert replacement.grad is not None and replacement.grad.abs().sum() > 0


def test_a_replacement_of_the_wrong_shape_is_refused():
    net = _net("edsr")
    with pytest.raises(ValueError, match="body.1"):
        net.forward_replacing(torch.rand(1, 3, 8, 8), "body.1", torch.zeros(1, 4, 8, 8))


def test_conv_after_body_is_the_body_output_before_the_global_skip():
    net, x = _net("edsr"), torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        _, feats = net.forward_intermediates(x, ["conv_after_body", "body"])
        shallow = net.conv_first(net.shift.normalize(x))
    assert torch.allclose(feats["body"], feats["conv_after_body"] + shallow, atol=1e-6)


# ----- any torch network: taps by module path ------------------------------------------------
class TinySR(nn.Module):
    """A plain torch x2 network: head, a residual body, a pixel-shuffle tail."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Sequential(
            nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3, padding=1)
        )
        self.tail = nn.Sequential(nn.Conv2d(4, 12, 3, padding=1), nn.PixelShuffle(2))
        self.unused = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        return self.tail(feat + self.body(feat))


def tiny() -> TinySR:
    torch.manual_seed(0)
    return TinySR()


def no_hooks(net: nn.Module) -> bool:
    return all(not m._forward_hooks for m in net.modules())


def test_module_paths_of_a_plain_network_give_its_module_outputs():
    net, x = tiny(), torch.rand(2, 3, 6, 5)
    with torch.no_grad():
        out, feats = forward_with_taps(net, x, ["body.0", "head", "body"])
        head = net.head(x)
        conv = net.body[0](head)
        expected = {"body.0": conv, "head": head, "body": net.body(head)}
        assert torch.equal(out, net(x))
    assert list(feats) == ["body.0", "head", "body"]
    for tap, feature in expected.items():
        assert torch.equal(feats[tap], feature), tap
    # body.1 is ReLU(inplace=True): the captured conv output is the one before it
    assert (feats["body.0"] < 0).any()
    assert no_hooks(net)


def test_no_taps_is_the_plain_forward():
    net, x = tiny(), torch.rand(1, 3, 4, 4)
    out, feats = forward_with_taps(net, x, ())
    assert feats == {} and torch.equal(out, net(x))


def test_replacing_a_module_output_runs_the_rest_on_it_and_passes_gradients():
    net, x = tiny(), torch.rand(1, 3, 5, 4)
    body = torch.randn(1, 4, 5, 4, requires_grad=True)
    out = forward_replacing(net, x, "body", body)
    by_hand = net.tail(net.head(x) + body)
    torch.testing.assert_close(out, by_hand, rtol=0, atol=0)
    (grad,) = torch.autograd.grad(out.square().sum(), body)
    (expected,) = torch.autograd.grad(by_hand.square().sum(), body)
    assert torch.equal(grad, expected) and grad.abs().sum() > 0
    head = torch.randn(1, 4, 5, 4)
    torch.testing.assert_close(
        forward_replacing(net, x, "head", head), net.tail(head + net.body(head.clone()))
    )
    assert no_hooks(net)


class Reused(nn.Module):
    """One conv applied twice (shared weights) and a module returning a tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.split = Split()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.split(self.conv(self.conv(x)))
        return a + b


class Split(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, 2 * x


@pytest.mark.parametrize(
    "net, tap, message",
    [
        (Reused(), "conv", r"^tap 'conv' \(Conv2d\) ran 2 times in one forward \(shared weights\)"),
        (Reused(), "split", r"^tap 'split' \(Split\) returns a tuple, not a tensor"),
        (TinySR(), "unused", r"^tap 'unused' \(Conv2d\) never ran in the forward"),
        (TinySR(), "body.7", r"^features \['body.7'\], which TinySR neither records nor has"),
    ],
)
def test_taps_a_forward_cannot_give_are_refused_in_one_line_naming_them(net, tap, message):
    x = torch.rand(1, 3, 4, 4)
    for call in (
        lambda: forward_with_taps(net, x, [tap]),
        lambda: forward_replacing(net, x, tap, torch.zeros(1, 3, 4, 4)),
    ):
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
        assert no_hooks(net)


def test_hooks_are_removed_when_the_forward_raises():
    net = tiny()
    with pytest.raises(ValueError, match=r"replacement for tap 'body' has shape \(1, 5, 4, 4\)"):
        forward_replacing(net, torch.rand(1, 3, 4, 4), "body", torch.zeros(1, 5, 4, 4))
    with pytest.raises(RuntimeError):  # 4 input channels where the head takes 3
        forward_with_taps(net, torch.rand(1, 4, 4, 4), ["body.0", "head"])
    assert no_hooks(net)


def test_check_taps_accepts_named_points_and_module_paths_and_names_what_it_lacks():
    edsr = _net("edsr")
    check_taps(edsr, ["body", "body.0.conv1", "upsample"], "student")
    check_taps(None, ["anything"], "teacher")
    check_taps(tiny(), (), "teacher")
    with pytest.raises(ValueError) as err:
        check_taps(edsr, ["body", "trunk", ""], "teacher")
    message = str(err.value)
    assert message.startswith("the loss reads teacher features ['trunk', ''], which EDSR")
    assert "named points: ['body.0', 'body.1', 'body.2', 'conv_after_body', 'body']" in message
    assert "module paths: shift, conv_first, body, conv_after_body" in message
    assert "\n" not in message


def test_a_named_point_wins_over_the_module_of_the_same_path():
    net, x = _net("span"), torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        _, named = net.forward_intermediates(x, ["block_1"])
        _, feats = forward_with_taps(net, x, ["block_1"])
        assert torch.equal(feats["block_1"], named["block_1"])
        # through a plain container the same path is the module's, which returns a tuple
        with pytest.raises(ValueError, match=r"tap '0.block_1' \(SPAB\) returns a tuple"):
            forward_with_taps(nn.Sequential(net), x, ["0.block_1"])


def test_named_points_and_module_paths_mix_in_one_forward():
    net, x = _net("edsr"), torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        out, feats = forward_with_taps(net, x, ["body.0.conv1", "body", "upsample"])
        _, named = net.forward_intermediates(x, ["body"])
        conv1 = net.body[0].conv1(net.conv_first(net.shift.normalize(x)))
        assert torch.equal(out, net(x))
        assert torch.equal(feats["upsample"], net.upsample(named["body"]))
    assert torch.equal(feats["body.0.conv1"], conv1) and torch.equal(feats["body"], named["body"])
    assert no_hooks(net)


@pytest.mark.parametrize("name", ["edsr", "rcan"])
def test_the_blocks_and_conv_after_body_hooked_equal_the_named_points(name):
    net, x = _net(name), torch.rand(1, 3, 8, 8)
    taps = [t for t in net.tap_names if t != "body"]
    with torch.no_grad():
        _, named = net.forward_intermediates(x, taps)
        _, hooked = forward_with_taps(nn.Sequential(net), x, [f"0.{t}" for t in taps])
    for tap in taps:
        assert torch.equal(hooked[f"0.{tap}"], named[tap]), tap


def test_replacing_at_a_module_path_of_a_backbone_matches_its_named_point():
    net, x = _net("edsr"), torch.rand(1, 3, 8, 8)
    feature = torch.randn(1, 8, 8, 8)
    wrapped = nn.Sequential(net)
    torch.testing.assert_close(
        forward_replacing(wrapped, x, "0.conv_after_body", feature),
        forward_replacing(net, x, "conv_after_body", feature),
        rtol=0,
        atol=0,
    )
