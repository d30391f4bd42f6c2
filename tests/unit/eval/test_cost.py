import pytest
import torch
from torch import nn

from srdistill.eval.cost import (
    count_flops,
    count_parameters,
    efficiency_report,
    measure_peak_memory,
)


def test_single_conv_flops_hand_computed():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    # 8 outputs x 3 inputs x 9 taps per pixel, 16x16 pixels, 2 FLOPs per multiply-accumulate
    assert count_flops(conv, (16, 16)) == 2 * 8 * 3 * 9 * 16 * 16
    assert count_parameters(conv) == 8 * 3 * 9 + 8


def test_counting_leaves_the_model_untouched():
    conv = nn.Conv2d(3, 4, 3, padding=1)
    before = conv.weight.detach().clone()
    count_flops(conv, (8, 8))
    assert conv.weight.device.type == "cpu" and torch.equal(conv.weight, before)


class Blowup(nn.Module):
    """Allocates a 64 MB activation."""

    def forward(self, x):
        return x.new_ones(16, 1024, 1024).sum() + x


def test_peak_memory_sees_activation():
    peak = measure_peak_memory(Blowup(), (4, 4))
    if peak is None:
        pytest.skip("peak memory needs /proc and fork (Linux)")
    assert 50 < peak < 200


def test_report_fields():
    report = efficiency_report(nn.Conv2d(3, 3, 3, padding=1), (8, 8), latency_hw=(8, 8), repeats=2)
    assert report.params == 84 and report.macs_g == pytest.approx(3 * 3 * 9 * 64 / 1e9)
    assert report.latency_ms > 0
