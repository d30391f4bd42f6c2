"""results.json ``flops_g``: the deployed student's multiply-accumulates, never a failed run."""

import logging

import pytest
from torch import nn

from srdistill.eval.cost import deployed_flops_g


def test_flops_g_counts_multiply_accumulates_at_lr_256():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert deployed_flops_g(conv) == pytest.approx(3 * 8 * 9 * 256 * 256 / 1e9)


class Untraceable(nn.Module):
    def forward(self, x):
        raise RuntimeError("data-dependent control flow")


def test_a_student_the_counter_cannot_trace_gives_null_and_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="srdistill.eval.cost"):
        assert deployed_flops_g(Untraceable()) is None
    assert len(caplog.records) == 1
    assert "flops_g: null" in caplog.text and "data-dependent control flow" in caplog.text
