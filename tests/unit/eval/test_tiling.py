import pytest
import torch

from srdistill.eval.benchmark import evaluate_benchmarks
from srdistill.eval.tiling import RECOMMENDED_OVERLAP, check_tiling, tiled_forward
from srdistill.models.backbones.edsr import EDSR
from srdistill.models.backbones.span import SPAN
from srdistill.models.backbones.swinir import SwinIR
from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.images import write_png


def span():
    # receptive field radius: conv_1 + 6 blocks x 3 convs + conv_2 + upsampler = 21 LR pixels
    return SPAN(scale=2, feature_channels=6).eval()


@pytest.mark.parametrize("tile", [8, 13, 24])
def test_conv_net_tiles_equal_whole_image_when_overlap_covers_receptive_field(tile):
    model = span()
    x = torch.rand(1, 3, 37, 29)
    with torch.no_grad():
        whole = model(x)
    tiled = tiled_forward(model, x, scale=2, tile=tile, overlap=21)
    assert torch.allclose(tiled, whole, atol=1e-5, rtol=0)


def test_too_little_overlap_is_visible():
    model = span()
    x = torch.rand(1, 3, 37, 29)
    with torch.no_grad():
        whole = model(x)
    tiled = tiled_forward(model, x, scale=2, tile=8, overlap=2)
    assert (tiled - whole).abs().max() > 1e-3


def test_edsr_tiles_equal_whole_image():
    # radius: conv_first 1 + blocks 2*2 + conv_after_body 1 + upsample 1 + conv_last (HR) 1 = 8
    model = EDSR(scale=3, num_feat=8, num_block=2).eval()
    x = torch.rand(2, 3, 20, 17)
    with torch.no_grad():
        whole = model(x)
    assert torch.allclose(tiled_forward(model, x, 3, tile=6, overlap=8), whole, atol=1e-5)


def test_swinir_tiles_any_size_close_to_whole_image():
    model = SwinIR(
        scale=2, embed_dim=12, depths=(2,), num_heads=(2,), window_size=4, img_size=16
    ).eval()
    x = torch.rand(1, 3, 30, 22)
    with torch.no_grad():
        whole = model(x)
    tiled = tiled_forward(model, x, 2, tile=11, overlap=8)  # tiles not multiples of the window
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().mean() < 0.05 * whole.abs().mean()


def test_no_tile_is_plain_forward():
    model = span()
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        assert torch.equal(tiled_forward(model, x, 2, tile=None), model(x))


def test_uint8_output_is_the_quantised_float_output():
    model = span()
    x = torch.rand(1, 3, 37, 29)
    for tile in (None, 8):
        floats = tiled_forward(model, x, 2, tile=tile, overlap=21)
        expected = torch.round(floats.double().clamp(0, 1) * 255).to(torch.uint8)
        quantised = tiled_forward(model, x, 2, tile=tile, overlap=21, to_uint8=True)
        assert torch.equal(quantised, expected)


@pytest.mark.parametrize("tile, overlap", [(8, -1), (0, 21), (-4, 21), (None, -1)])
def test_impossible_settings_are_refused(tile, overlap):
    with pytest.raises(ValueError, match="tile"):
        check_tiling(tile, overlap)


def test_small_overlap_warns_once_with_the_recommendation(caplog):
    check_tiling(64, 0)
    (record,) = caplog.records
    assert record.levelname == "WARNING" and "\n" not in record.getMessage()
    assert "tile_overlap=0" in record.getMessage()
    assert f"{RECOMMENDED_OVERLAP} LR pixels" in record.getMessage()


@pytest.mark.parametrize("tile, overlap", [(64, RECOMMENDED_OVERLAP), (None, 0), (8, 32)])
def test_enough_overlap_or_no_tiling_is_silent(caplog, tile, overlap):
    check_tiling(tile, overlap)
    assert not caplog.records


def test_negative_overlap_fails_before_any_image_is_read(tmp_path):
    # the root does not exist: a check after reading would raise FileNotFoundError instead
    with pytest.raises(ValueError, match="tile_overlap"):
        evaluate_benchmarks(span(), tmp_path / "nowhere", ["Set5"], 2, tile=8, tile_overlap=-1)


def test_eval_cli_negative_overlap_is_one_line():
    proc = run_script("eval.py", "scale=2", "tile=8", "tile_overlap=-3")
    assert_one_line_error(proc, "tile_overlap", "-3")


def test_tiled_evaluation_scores_as_whole_image(tmp_path, photo):
    write_png(tmp_path / "Tiny" / "HR" / "a.png", photo)
    model = span()
    whole = evaluate_benchmarks(model, tmp_path, ["Tiny"], 2)["Tiny"]
    tiled = evaluate_benchmarks(model, tmp_path, ["Tiny"], 2, tile=16, tile_overlap=21)["Tiny"]
    for key in ("psnr", "ssim", "psnr_rgb"):
        assert tiled[key] == whole[key]
