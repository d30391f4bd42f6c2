"""Unit tests for the SwinIR backbone: official key names, parameter counts, shapes, masks."""

from __future__ import annotations

import pytest
import torch

from srdistill.models.backbones.swinir import (
    SwinIR,
    WindowAttention,
    shifted_window_mask,
    swinir_light,
    swinir_student,
    swinir_teacher,
)

TINY = dict(
    embed_dim=12, depths=(2, 2), num_heads=(2, 2), window_size=4, img_size=16, mlp_ratio=2.0
)


def tiny(seed: int = 0, **kwargs) -> SwinIR:
    torch.manual_seed(seed)
    return SwinIR(**{**TINY, **kwargs}).eval()


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- parameter counts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "scale", "expected"),
    [
        (swinir_teacher, 2, 11_752_487),
        (swinir_teacher, 3, 11_937_127),
        (swinir_teacher, 4, 11_900_199),
        (swinir_light, 2, 910_152),
        (swinir_light, 3, 918_267),
        (swinir_light, 4, 929_628),
        (swinir_student, 4, 1_235_439),
    ],
)
def test_parameter_counts(factory, scale, expected):
    assert n_params(factory(scale)) == expected


def test_student_is_about_1_24m():
    assert abs(n_params(swinir_student(4)) - 1.24e6) / 1.24e6 < 0.01


def test_factory_kwargs_override():
    model = swinir_light(2, img_size=48, drop_path_rate=0.0)
    block = model.layers[0].residual_group.blocks[1]
    assert block.attn_mask.shape == (36, 64, 64)


# --- state-dict keys -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher_x4_state():
    return swinir_teacher(4).state_dict()


def test_teacher_keys_match_official(teacher_x4_state):
    sd = teacher_x4_state
    expected = {
        "conv_first.weight": (180, 3, 3, 3),
        "patch_embed.norm.weight": (180,),
        "layers.0.residual_group.blocks.0.attn.relative_position_bias_table": (225, 6),
        "layers.0.residual_group.blocks.0.attn.relative_position_index": (64, 64),
        "layers.5.residual_group.blocks.5.attn.qkv.weight": (540, 180),
        "layers.0.residual_group.blocks.1.attn_mask": (64, 64, 64),
        "layers.3.residual_group.blocks.2.mlp.fc1.weight": (360, 180),
        "layers.3.residual_group.blocks.2.mlp.fc2.bias": (180,),
        "layers.2.conv.weight": (180, 180, 3, 3),
        "norm.bias": (180,),
        "conv_after_body.weight": (180, 180, 3, 3),
        "conv_before_upsample.0.weight": (64, 180, 3, 3),
        "upsample.0.weight": (256, 64, 3, 3),
        "upsample.2.weight": (256, 64, 3, 3),
        "conv_last.weight": (3, 64, 3, 3),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    index = sd["layers.0.residual_group.blocks.0.attn.relative_position_index"]
    assert index.dtype == torch.long
    assert "mean" not in sd
    assert "layers.0.residual_group.blocks.0.attn_mask" not in sd  # unshifted block
    assert not any("patch_unembed" in k or "absolute_pos_embed" in k for k in sd)


def test_x3_tail_is_single_conv():
    sd = swinir_teacher(3).state_dict()
    assert tuple(sd["upsample.0.weight"].shape) == (576, 64, 3, 3)
    assert not any(k.startswith("upsample.2") for k in sd)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_light_tail_keys(scale):
    sd = swinir_light(scale).state_dict()
    assert tuple(sd["upsample.0.weight"].shape) == (3 * scale**2, 60, 3, 3)
    assert not any(k.startswith(("conv_before_upsample", "conv_last")) for k in sd)


def test_strict_round_trip():
    a, b = tiny(seed=0), tiny(seed=1)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


# --- forward behaviour -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "upsampler"),
    [(2, "pixelshuffle"), (3, "pixelshuffle"), (4, "pixelshuffle"), (3, "pixelshuffledirect")],
)
def test_output_shape_for_odd_input(scale, upsampler):
    model = tiny(scale=scale, upsampler=upsampler)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 13, 10))
    assert out.shape == (1, 3, 13 * scale, 10 * scale)
    assert torch.isfinite(out).all()


def test_forward_intermediates_matches_forward():
    model = tiny(scale=2)
    assert model.tap_names == ("layers.0", "layers.1", "conv_after_body", "body")
    x = torch.rand(1, 3, 13, 10)
    with torch.no_grad():
        out = model(x)
        out2, feats = model.forward_intermediates(x, ["layers.1", "body"])
    assert torch.equal(out, out2)
    assert set(feats) == {"layers.1", "body"}
    for f in feats.values():
        assert f.shape == (1, 12, 16, 12)  # padded to multiples of the window size
    with pytest.raises(ValueError, match="layers.7"):
        model.forward_intermediates(x, ["layers.7"])


def test_mean_is_restored_at_the_output():
    model = tiny(scale=2, img_range=255.0)
    torch.nn.init.zeros_(model.conv_last.weight)
    torch.nn.init.zeros_(model.conv_last.bias)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 8, 8))
    expected = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1).expand_as(out)
    torch.testing.assert_close(out, expected)


def test_mask_recomputed_for_other_sizes():
    # Same seed -> same weights; only img_size (stored masks) differs.
    a, b = tiny(seed=3, img_size=16), tiny(seed=3, img_size=24)
    for size in (16, 20, 24):
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            assert torch.equal(a(x), b(x)), size


def test_float64_forward_with_fresh_mask():
    model = tiny(scale=2).double()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 20, 20, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_backward_reaches_all_parameters():
    model = tiny(scale=2).train()
    model(torch.rand(1, 3, 12, 12)).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


# --- validation ------------------------------------------------------------------------------


def test_invalid_upsampler():
    with pytest.raises(ValueError, match="pixelshuffle.*pixelshuffledirect"):
        SwinIR(**TINY, upsampler="nearest+conv")


def test_invalid_resi_connection():
    with pytest.raises(ValueError, match="1conv"):
        SwinIR(**TINY, resi_connection="2conv")


def test_invalid_classical_scale():
    with pytest.raises(ValueError, match="scale"):
        SwinIR(**TINY, scale=5)
    assert SwinIR(**TINY, scale=5, upsampler="pixelshuffledirect").scale == 5


# --- windows and masks -----------------------------------------------------------------------


def test_stored_mask_equals_fresh_mask():
    model = tiny()
    block = model.layers[1].residual_group.blocks[1]
    assert block.shift_size == 2
    fresh = shifted_window_mask(16, 16, 4, 2)
    assert torch.equal(block.attn_mask, fresh)
    assert block._mask((16, 16), torch.zeros(1)) is block.attn_mask
    assert torch.equal(block._mask((20, 20), torch.zeros(1)), shifted_window_mask(20, 20, 4, 2))
    assert model.layers[0].residual_group.blocks[0].attn_mask is None


@pytest.mark.parametrize(("h", "w", "ws"), [(16, 16, 4), (8, 12, 4), (16, 24, 8)])
def test_mask_separates_wrapped_tokens(h, w, ws):
    shift = ws // 2
    mask = shifted_window_mask(h, w, ws, shift)
    assert mask.shape == ((h // ws) * (w // ws), ws * ws, ws * ws)
    assert set(mask.unique().tolist()) <= {0.0, -100.0}
    assert not mask[0].any()  # the first window holds no wrapped-around tokens
    # Brute force: after rolling by -shift, pixel (r, c) wrapped iff r + shift >= h (same for c).
    rows = torch.arange(h)[:, None].expand(h, w)
    cols = torch.arange(w)[None, :].expand(h, w)
    wrapped = (rows + shift >= h).long() * 2 + (cols + shift >= w).long()
    win = wrapped.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    expected = (win[:, :, None] != win[:, None, :]).float() * -100.0
    assert torch.equal(mask, expected)
    assert mask[-1].any()  # the corner window mixes regions


def test_small_resolution_disables_shift():
    model = SwinIR(**{**TINY, "img_size": 6, "window_size": 8})
    block = model.layers[0].residual_group.blocks[1]
    assert (block.shift_size, block.window_size) == (0, 6)
    assert block.attn_mask is None
    assert tuple(block.attn.relative_position_bias_table.shape) == (121, 2)


def test_window_attention_matches_explicit_softmax():
    torch.manual_seed(0)
    attn = WindowAttention(dim=8, window_size=4, num_heads=2)
    mask = shifted_window_mask(8, 8, 4, 2)  # 4 windows
    x = torch.randn(2 * 4, 16, 8)
    with torch.no_grad():
        got = attn(x, mask)
        q, k, v = attn.qkv(x).reshape(8, 16, 3, 2, 4).permute(2, 0, 3, 1, 4)
        logits = (q * 4**-0.5) @ k.transpose(-2, -1) + attn._bias().unsqueeze(0)
        logits = (logits.view(2, 4, 2, 16, 16) + mask[None, :, None]).view(8, 2, 16, 16)
        ref = attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(8, 16, 8))
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_relative_position_index_is_symmetric_offset():
    index = WindowAttention(dim=4, window_size=3, num_heads=1).relative_position_index
    assert index.shape == (9, 9)
    # A zero offset indexes the centre of the (2*3-1)^2 = 25-entry table.
    assert torch.all(index.diagonal() == 12)
    assert int(index.max()) == 24 and int(index.min()) == 0
