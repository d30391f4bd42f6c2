"""ConvLoRA: identity at init, the update's exact form, merge/unmerge, the deployed conv."""

import math

import pytest
import torch
from torch import nn

from srdistill.lora.conv import LoRAConv2d, lora_scaling


def conv(c_in=4, c_out=6, k=3, groups=1, bias=True):
    torch.manual_seed(1)
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=bias)


def randomize_b(adapter: LoRAConv2d) -> LoRAConv2d:
    with torch.no_grad():
        adapter.lora_B.normal_(std=0.5)
    return adapter


@pytest.mark.parametrize(
    "k,groups,a_init", [(3, 1, "kaiming_uniform"), (1, 1, "gaussian"), (3, 2, "kaiming_uniform")]
)
def test_output_equals_frozen_conv_at_init(k, groups, a_init):
    base = conv(k=k, groups=groups)
    adapter = LoRAConv2d.wrap(base, rank=2, alpha=4, a_init=a_init)
    x = torch.randn(2, 4, 7, 7)
    assert torch.equal(adapter(x), base(x))
    assert adapter.lora_A.abs().sum() > 0  # A is random; B = 0 is what keeps the output


def test_update_has_the_convlora_shape_and_scaling():
    base = conv(c_in=4, c_out=6, k=3)
    adapter = LoRAConv2d.wrap(base, rank=2, alpha=8)
    assert adapter.lora_A.shape == (2 * 3, 4 * 3)
    assert adapter.lora_B.shape == (6 * 3, 2 * 3)
    randomize_b(adapter)
    expected = (adapter.lora_B @ adapter.lora_A).reshape(6, 4, 3, 3) * (8 / 2)
    torch.testing.assert_close(adapter.delta_weight(), expected)


def test_one_by_one_case_by_hand():
    base = nn.Conv2d(1, 1, 1, bias=False)
    adapter = LoRAConv2d.wrap(base, rank=1, alpha=3.0)
    with torch.no_grad():
        adapter.weight.fill_(2.0)
        adapter.lora_A.fill_(0.5)
        adapter.lora_B.fill_(4.0)
    # w = 2 + (4 * 0.5) * 3 / 1 = 8
    assert adapter(torch.ones(1, 1, 1, 1)).item() == pytest.approx(8.0)


def test_scalings():
    assert lora_scaling(8, 16) == 2.0
    assert lora_scaling(16, 32, "rslora") == pytest.approx(32 / 4)
    assert LoRAConv2d.wrap(conv(), rank=4).alpha == 8  # alpha defaults to 2r
    with pytest.raises(ValueError, match="scaling"):
        lora_scaling(2, 4, "dora")


def test_merge_then_unmerge_restores_weights_exactly():
    adapter = randomize_b(LoRAConv2d.wrap(conv(), rank=3))
    before = adapter.weight.detach().clone()
    adapter.merge()
    assert not torch.equal(adapter.weight, before)
    adapter.unmerge()
    assert torch.equal(adapter.weight, before)


def test_merged_output_matches_unmerged_and_plain_conv():
    adapter = randomize_b(LoRAConv2d.wrap(conv(), rank=2))
    x = torch.randn(2, 4, 9, 9)
    unmerged = adapter(x)
    plain = adapter.to_conv2d()
    assert type(plain) is nn.Conv2d
    torch.testing.assert_close(plain(x), unmerged, atol=1e-5, rtol=0)
    adapter.merge()
    torch.testing.assert_close(adapter(x), unmerged, atol=1e-5, rtol=0)
    torch.testing.assert_close(adapter.to_conv2d()(x), unmerged, atol=1e-5, rtol=0)


def test_only_adapters_train_and_gradients_reach_them():
    adapter = LoRAConv2d.wrap(conv(), rank=2)
    assert not adapter.weight.requires_grad and not adapter.bias.requires_grad
    randomize_b(adapter)
    adapter(torch.randn(1, 4, 5, 5)).square().sum().backward()
    assert adapter.lora_A.grad.abs().sum() > 0 and adapter.lora_B.grad.abs().sum() > 0
    assert adapter.weight.grad is None and adapter.bias.grad is None


def test_state_dict_keeps_the_conv_keys():
    adapter = LoRAConv2d.wrap(conv(), rank=2)
    assert set(adapter.state_dict()) == {"weight", "bias", "lora_A", "lora_B"}


def test_kaiming_init_bound():
    adapter = LoRAConv2d.wrap(conv(c_in=8), rank=2)
    fan_in = adapter.lora_A.shape[1]
    assert adapter.lora_A.abs().max() <= 1 / math.sqrt(fan_in) + 1e-6


def test_bad_rank_is_rejected():
    with pytest.raises(ValueError, match="rank"):
        LoRAConv2d.wrap(conv(), rank=0)
