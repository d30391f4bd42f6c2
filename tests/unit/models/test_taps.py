"""``forward_replacing``: run the rest of a network on a feature of one's own (MiPKD's block
path), and ``conv_after_body``: the body's output before the global skip."""

import pytest
import torch

from srdistill.models.backbones.edsr import EDSR
from srdistill.models.backbones.rcan import RCAN
from srdistill.models.backbones.span import SPAN
from srdistill.models.backbones.swinir import SwinIR

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
