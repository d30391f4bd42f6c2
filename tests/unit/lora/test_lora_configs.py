"""The DSCLoRA configurations agree with each other: every variant of ``lora=lora`` adapts what it
says it adapts, at the main model's (Tab. 2) rank and alpha for each layer it shares with it."""

import pytest
from hydra.utils import instantiate
from torch import nn

from srdistill.models.backbones.span import span_ch26
from tests.helpers.configs import compose_config

SPAB = {f"block_{b}.c{c}_r.eval_conv" for b in range(1, 7) for c in range(1, 4)}
TAIL = {"conv_2.eval_conv", "upsampler.0"}


def adapted(name: str) -> dict[str, tuple[int, float]]:
    """(rank, alpha) of every conv of SPAN-Tiny that ``lora=name`` adapts."""
    spec = instantiate(compose_config("train", [f"lora={name}", "backbone=span"]).lora)
    convs = [n for n, m in span_ch26().named_modules() if type(m) is nn.Conv2d]
    return {n: (m["rank"], m["alpha"]) for n in convs if (m := spec.match(n)) is not None}


def test_main_model_has_table_2_ranks_with_alpha_twice_the_rank():
    layers = adapted("lora")
    assert set(layers) == SPAB | TAIL
    expected = {1: 8, 2: 12, 3: 12, 4: 12, 5: 12, 6: 4}
    for b, rank in expected.items():
        for c in (1, 2, 3):
            assert layers[f"block_{b}.c{c}_r.eval_conv"] == (rank, 2 * rank)
    assert layers["upsampler.0"] == (16, 32) and layers["conv_2.eval_conv"] == (24, 48)
    pairs = {pair for pair in layers.values()}
    assert pairs == {(4, 8), (8, 16), (12, 24), (16, 32), (24, 48)}  # Tab. 2's five pairs


@pytest.mark.parametrize(
    "name,layers",
    [
        ("lora_part", SPAB),
        ("lora_tail", TAIL),
        ("lora_conv_cat", SPAB | {"upsampler.0", "conv_cat"}),
    ],
)
def test_variants_keep_the_main_ranks_on_the_layers_they_adapt(name, layers):
    main, variant = adapted("lora"), adapted(name)
    assert set(variant) == layers
    for layer in layers & set(main):
        assert variant[layer] == main[layer], layer
    if "conv_cat" in layers:  # in the place of conv_2, at conv_2's pair
        assert variant["conv_cat"] == main["conv_2.eval_conv"]


def test_rank2_ablation_is_the_main_targets_at_rank_2():
    variant = adapted("lora_rank2")
    assert set(variant) == set(adapted("lora"))
    assert set(variant.values()) == {(2, 4.0)}


@pytest.mark.parametrize("name", ["lora_plus", "lora_fa", "rslora"])
def test_training_variants_use_the_main_targets(name):
    assert adapted(name) == adapted("lora")


def test_table_7_sweep_includes_both_part_lora_readings():
    cfg = compose_config("train", ["experiment=dsclora_tab7"], hydra=True)
    swept = cfg.hydra.sweeper.params.lora.split(",")
    assert {"none", "lora_part", "lora_tail", "lora_rank2", "lora"} == set(swept)
