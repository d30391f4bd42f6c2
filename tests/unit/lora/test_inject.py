"""Adapters by name pattern on real backbones; which parameters train for each variant."""

import copy

import pytest
import torch

from srdistill.lora.conv import LoRAConv2d
from srdistill.lora.inject import LoRASpec, lora_modules, lora_param_groups
from srdistill.lora.merge import average_with, deployable, merge_lora
from srdistill.models.backbones.edsr import EDSR
from srdistill.models.backbones.span import SPAN, span_ch26
from tests.helpers.configs import compose_config

SCONVLB = r"block_\d+\.c[123]_r\.eval_conv"
DSCLORA_TARGETS = [
    {"pattern": SCONVLB, "rank": 2, "alpha": 4},
    {"pattern": r"conv_2\.eval_conv|upsampler\.0", "rank": 8, "alpha": 16},
]


def small_span(**kwargs):
    torch.manual_seed(0)
    return SPAN(scale=2, feature_channels=8, **kwargs)  # rank 8 fits


def trainable(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def perturb_adapters(model):
    with torch.no_grad():
        for adapter in lora_modules(model).values():
            adapter.lora_B.normal_(std=0.05)
    return model


def test_dsclora_targets_on_span():
    model = small_span()
    adapters = LoRASpec(DSCLORA_TARGETS).apply(model)
    assert len(adapters) == 6 * 3 + 2
    assert adapters["upsampler.0"].rank == 8 and adapters["block_3.c2_r.eval_conv"].rank == 2
    assert type(model.conv_cat) is torch.nn.Conv2d  # not a target


@pytest.mark.parametrize(
    "variant,kwargs,expected",
    [
        ("lora", {}, {"lora_A", "lora_B"}),
        ("lora_fa", {"train_a": False}, {"lora_B"}),
        ("bias", {"train_bias": True}, {"lora_A", "lora_B", "bias"}),
    ],
)
def test_only_intended_parameters_require_grad(variant, kwargs, expected):
    model = small_span()
    LoRASpec(DSCLORA_TARGETS, **kwargs).apply(model)
    names = trainable(model)
    assert names and {n.rsplit(".", 1)[-1] for n in names} == expected
    assert all(".eval_conv." in n or n.startswith("upsampler.0.") for n in names)


def test_without_freezing_the_base_everything_trains():
    model = small_span()
    LoRASpec([{"pattern": SCONVLB, "rank": 2}], freeze_base=False).apply(model)
    assert "conv_cat.weight" in trainable(model) and "conv_1.eval_conv.weight" in trainable(model)


def test_same_code_adapts_edsr():
    model = EDSR(scale=2, num_feat=8, num_block=2)
    adapters = LoRASpec([{"pattern": r"body\.\d+\.conv[12]", "rank": 2}]).apply(model)
    assert len(adapters) == 4
    x = torch.rand(1, 3, 8, 8)
    reference = EDSR(scale=2, num_feat=8, num_block=2)
    reference.load_state_dict(model.state_dict(), strict=False)
    torch.testing.assert_close(model(x), reference(x))


def test_a_pattern_matching_nothing_is_an_error():
    with pytest.raises(ValueError, match=r"block_9.*match no Conv2d"):
        LoRASpec([{"pattern": "block_9.c1_r.eval_conv", "rank": 2}]).apply(small_span())


def test_pretrained_weights_load_into_the_adapted_network():
    plain = small_span()
    adapted = small_span()
    LoRASpec(DSCLORA_TARGETS).apply(adapted)
    missing, unexpected = adapted.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and all(k.endswith(("lora_A", "lora_B")) for k in missing)


def test_merged_model_matches_adapter_model_and_has_the_plain_keys():
    model = small_span()
    LoRASpec(DSCLORA_TARGETS).apply(model)
    perturb_adapters(model)
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        before = model(x)
        merge_lora(model)
        after = model(x)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    assert not any(isinstance(m, LoRAConv2d) for m in model.modules())
    assert set(model.state_dict()) == set(small_span().state_dict())


def test_average_with_pretrained_is_a_weighted_mean():
    pretrained = small_span()
    trained = small_span()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    average_with(trained, pretrained.state_dict(), 0.25)
    for (name, p), q in zip(trained.named_parameters(), pretrained.parameters(), strict=True):
        torch.testing.assert_close(p, q + 0.25, msg=name)


def test_deployable_training_form_span_folds_to_the_slim_keys():
    model = small_span(reparameterized=False)
    LoRASpec([{"pattern": r"block_\d+\.c1_r\.sk", "rank": 1}]).apply(model)
    perturb_adapters(model)
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        before = model.eval()(x)
        deployed = deployable(model)
    torch.testing.assert_close(deployed(x), before, atol=1e-5, rtol=1e-5)  # outputs reach ~25
    assert set(deployed.state_dict()) == set(small_span().state_dict())


def test_lora_plus_puts_b_in_a_faster_group():
    model = small_span()
    LoRASpec(DSCLORA_TARGETS, b_lr_ratio=16.0).apply(model)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = lora_param_groups(params, model)
    assert len(groups) == 2 and groups[1]["lr_scale"] == 16.0
    b_ids = {id(m.lora_B) for m in lora_modules(model).values()}
    assert {id(p) for p in groups[1]["params"]} == b_ids
    assert not b_ids & {id(p) for p in groups[0]["params"]}


def test_plain_lora_has_one_group():
    model = small_span()
    LoRASpec(DSCLORA_TARGETS).apply(model)
    params = [p for p in model.parameters() if p.requires_grad]
    assert len(lora_param_groups(params, model)) == 1


LORA_CONFIGS = [
    "lora",
    "lora_plus",
    "lora_fa",
    "rslora",
    "lora_part",
    "lora_rank2",
    "lora_conv_cat",
    "lora_tail",
    "lora_released_comment",
]


@pytest.mark.parametrize("name", LORA_CONFIGS)
def test_every_lora_config_applies_to_span_tiny(name):
    from hydra.utils import instantiate

    spec = instantiate(compose_config("train", [f"lora={name}", "backbone=span"]).lora)
    plain = span_ch26()
    model = copy.deepcopy(plain)
    adapters = spec.apply(model)
    frozen = [p for n, p in model.named_parameters() if "lora_" not in n]
    assert adapters and not any(p.requires_grad for p in frozen)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))


def test_edsr_with_adapters_deploys_to_plain_edsr_keys():
    model = EDSR(scale=2, num_feat=8, num_block=2)
    LoRASpec([{"pattern": r"body\.\d+\.conv[12]|conv_after_body", "rank": 2}]).apply(model)
    perturb_adapters(model)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        before = model(x)
        deployed = deployable(model)
        torch.testing.assert_close(deployed(x), before, atol=1e-5, rtol=1e-5)
    plain = EDSR(scale=2, num_feat=8, num_block=2)
    plain.load_state_dict(deployed.state_dict(), strict=True)


def test_a_rank_above_what_the_layer_can_use_is_refused():
    # SPAN's 8-channel convs: an update of rank above 8 per kernel row adds nothing but parameters
    with pytest.raises(ValueError, match=r"rank 9 for conv block_1\.c1_r\.eval_conv .* limit 8"):
        LoRASpec([{"pattern": r"block_1\.c1_r\.eval_conv", "rank": 9}]).apply(small_span())
    LoRASpec([{"pattern": r"block_1\.c1_r\.eval_conv", "rank": 8}]).apply(small_span())
