"""EDSR, RCAN and SPAN: parameter counts of the published variants, layout, taps, gradients."""

import pytest
import torch

from srdistill.eval.cost import count_parameters
from srdistill.models.backbones.bicubic import Bicubic
from srdistill.models.backbones.edsr import EDSR, edsr_baseline, edsr_student, edsr_teacher
from srdistill.models.backbones.rcan import RCAN, rcan_student, rcan_teacher
from srdistill.models.backbones.span import SPAN, span_ch26, span_ch28, span_ch48, span_ch52
from srdistill.models.backbones.swinir import SwinIR


def tiny_models():
    return {
        "edsr": EDSR(scale=2, num_feat=8, num_block=2),
        "rcan": RCAN(scale=3, num_feat=16, num_group=2, num_block=2, squeeze_factor=4),
        "span": SPAN(scale=4, feature_channels=6),
        "span_train_form": SPAN(scale=2, feature_channels=6, reparameterized=False),
        "swinir": SwinIR(
            scale=2, embed_dim=12, depths=(2,), num_heads=(2,), window_size=4, img_size=16
        ),
    }


# Counts from the official implementations (see the checkpoint spec), buffers excluded.
PUBLISHED_COUNTS = {
    (edsr_baseline, 2): 1_369_859,
    (edsr_baseline, 3): 1_554_499,
    (edsr_baseline, 4): 1_517_571,
    (edsr_student, 4): 2_699_267,
    (rcan_student, 4): 5_171_315,
    (span_ch26, 4): 130_828,
    (span_ch28, 4): 150_688,
    (span_ch48, 2): 410_700,
    (span_ch48, 3): 417_195,
    (span_ch48, 4): 426_288,
    (span_ch52, 2): 481_324,
    (span_ch52, 3): 488_359,
    (span_ch52, 4): 498_208,
}


@pytest.mark.parametrize(
    "factory, scale", list(PUBLISHED_COUNTS), ids=lambda v: getattr(v, "__name__", str(v))
)
def test_parameter_counts_match_releases(factory, scale):
    assert count_parameters(factory(scale)) == PUBLISHED_COUNTS[(factory, scale)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "factory, scale, expected",
    [
        (edsr_teacher, 2, 40_729_603),
        (edsr_teacher, 3, 43_680_003),
        (edsr_teacher, 4, 43_089_923),
        (rcan_teacher, 2, 15_444_643),
        (rcan_teacher, 3, 15_629_283),
        (rcan_teacher, 4, 15_592_355),
    ],
)
def test_teacher_parameter_counts(factory, scale, expected):
    assert count_parameters(factory(scale)) == expected


def test_basicsr_key_names():
    edsr_keys = set(EDSR(scale=4, num_feat=8, num_block=2).state_dict())
    assert {
        "conv_first.weight",
        "body.1.conv2.bias",
        "conv_after_body.weight",
        "upsample.0.weight",
        "upsample.2.weight",
        "conv_last.weight",
    } <= edsr_keys
    rcan_keys = set(RCAN(scale=3, num_feat=16, num_group=2, num_block=2).state_dict())
    assert {
        "body.1.residual_group.1.rcab.0.weight",
        "body.1.residual_group.1.rcab.3.attention.3.bias",
        "body.1.conv.weight",
        "upsample.0.weight",
    } <= rcan_keys
    assert "upsample.2.weight" not in rcan_keys  # x3 is a single 9C conv
    span_keys = list(span_ch26().state_dict())
    assert len(span_keys) == 44 and "block_6.c3_r.eval_conv.weight" in span_keys
    assert not any("mean" in k for k in edsr_keys | rcan_keys | set(span_keys))


@pytest.mark.parametrize("name", list(tiny_models()))
def test_output_shape_and_taps_do_not_change_output(name):
    model = tiny_models()[name].eval()
    x = torch.rand(2, 3, 11, 9)
    out = model(x)
    assert out.shape == (2, 3, 11 * model.scale, 9 * model.scale)
    again, feats = model.forward_intermediates(x, model.tap_names)
    assert torch.equal(out, again)
    assert list(feats) == list(model.tap_names)
    assert all(f.shape[0] == 2 and f.ndim == 4 for f in feats.values())


def test_unknown_tap_is_rejected_with_the_list():
    with pytest.raises(ValueError, match="available.*block_1"):
        span_ch26().forward_intermediates(torch.rand(1, 3, 8, 8), ["block_9"])


@pytest.mark.parametrize("name", list(tiny_models()))
def test_gradients_reach_every_parameter(name):
    model = tiny_models()[name].train()
    model(torch.rand(1, 3, 8, 8)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_mean_is_restored_at_the_output_of_edsr():
    model = EDSR(scale=2, num_feat=8, num_block=1)
    torch.nn.init.zeros_(model.conv_last.weight)
    torch.nn.init.zeros_(model.conv_last.bias)
    out = model(torch.rand(1, 3, 4, 4))
    assert torch.allclose(out, model.shift.mean.expand_as(out))


class TestSpanReparameterization:
    def random_train_form(self, scale=4):
        model = SPAN(scale=scale, feature_channels=8, reparameterized=False)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.05)  # non-trivial biases everywhere, borders included
        return model

    def test_fold_matches_training_branches(self):
        model = self.random_train_form().train()
        x = torch.rand(2, 3, 13, 10)
        with torch.no_grad():
            expected = model(x)  # branch form
            folded = model.reparameterize().eval()(x)
        assert torch.allclose(expected, folded, atol=1e-5, rtol=0)
        assert expected.abs().max() > 0.1

    def test_folded_model_has_slim_layout(self):
        model = self.random_train_form().reparameterize()
        assert count_parameters(model) == count_parameters(SPAN(scale=4, feature_channels=8))
        assert set(model.state_dict()) == set(SPAN(scale=4, feature_channels=8).state_dict())

    def test_eval_mode_uses_the_fused_kernel_of_the_live_weights(self):
        model = self.random_train_form()
        x = torch.rand(1, 3, 9, 9)
        with torch.no_grad():
            branch = model.train()(x)
            fused = model.eval()(x)
        assert torch.allclose(branch, fused, atol=1e-5, rtol=0)


def test_bicubic_model_upscales_like_imresize():
    from srdistill.data.matlab_bicubic import imresize

    x = torch.rand(1, 3, 8, 6)
    out = Bicubic(scale=3, emulate_uint8=False)(x)
    assert out.shape == (1, 3, 24, 18)
    assert torch.equal(out, imresize(x, scale=3.0))


def test_traceable_bicubic_upsampling_equals_matlab_imresize():
    from srdistill.data.matlab_bicubic import imresize
    from srdistill.models.heads.upsample import MatlabBicubicUpsample

    for scale in (2, 3, 4, 8):
        lq = torch.rand(2, 3, 9, 5, dtype=torch.float64)
        got = MatlabBicubicUpsample(scale).double()(lq)
        assert torch.allclose(got, imresize(lq, scale=float(scale)), atol=1e-6)  # fp32 taps
    traced = torch.jit.trace(MatlabBicubicUpsample(4), torch.rand(1, 3, 6, 6))
    other = torch.rand(1, 3, 13, 7)  # another size than the one traced
    assert torch.allclose(traced(other), MatlabBicubicUpsample(4)(other))


def test_edsr_with_bicubic_skip_starts_as_matlab_bicubic_and_keeps_its_keys():
    model = EDSR(scale=4, num_feat=8, num_block=2, bicubic_skip=True)
    lq = torch.rand(2, 3, 12, 10)
    expected = Bicubic(4, emulate_uint8=False)(lq)
    assert torch.allclose(model(lq), expected, atol=1e-6)
    assert set(model.state_dict()) == set(EDSR(scale=4, num_feat=8, num_block=2).state_dict())
    model(lq).square().mean().backward()  # the zero last conv still learns
    assert model.conv_last.weight.grad.abs().sum() > 0
