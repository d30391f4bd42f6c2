import pytest
import torch

from srdistill.eval.tiling import tiled_forward
from srdistill.models.backbones.edsr import EDSR
from srdistill.models.backbones.span import SPAN
from srdistill.models.backbones.swinir import SwinIR


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
