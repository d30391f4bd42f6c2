"""Architecture detection: every conf/model network is recognised from its weights alone."""

from __future__ import annotations

import pytest
import torch

from srdistill.models.checkpoint import convert_official_keys
from srdistill.models.detect import (
    config_args,
    detect_architecture,
    from_metadata,
    to_metadata,
)
from srdistill.models.registry import MODELS, BuildRecordError, build_from_record

# the conf/model networks at their configured size (cheap ones): name and numbers must come back
AT_CONF_SIZE = [
    ("span_ch16", 4, "span_ch16"),
    ("span_ch26", 4, "span_ch26"),
    ("span_ch28", 2, "span_ch28"),
    ("span_ch48", 3, "span_ch48"),
    ("span_ch52", 4, "span_ch52"),
    ("edsr_baseline", 3, "edsr_baseline"),
    ("edsr_sample", 4, "edsr_sample"),
    ("edsr_sample_student", 4, "edsr_sample_student"),  # bicubic_skip comes from its config
    ("edsr_tiny_student", 2, "edsr_tiny_student"),
    ("edsr_tiny_teacher", 8, "edsr_tiny_teacher"),
    ("sample_teacher", 4, "edsr_sample"),  # the same network as edsr_sample
]
# the big ones made small: every size read from the shapes must come back
SMALL = [
    ("edsr_student", {"scale": 2, "num_feat": 8, "num_block": 3}),
    ("edsr_teacher", {"scale": 4, "num_feat": 8, "num_block": 2}),
    ("rcan_student", {"scale": 2, "num_feat": 16, "num_group": 2, "num_block": 3}),
    ("rcan_teacher", {"scale": 3, "num_feat": 32, "num_group": 3, "num_block": 1}),
    ("swinir_student", {"scale": 2, "embed_dim": 12, "depths": [2, 1], "num_heads": [2, 3]}),
    ("swinir_teacher", {"scale": 4, "embed_dim": 16, "depths": [1], "num_heads": [4]}),
    ("swinir_light", {"scale": 3, "embed_dim": 12, "depths": [1, 1], "num_heads": [3, 2]}),
    ("span_ch26", {"scale": 2, "reparameterized": False}),  # the training form
]


def build(name: str, args: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_from_record(name, args, None).eval()


def same_network(a: torch.nn.Module, b: torch.nn.Module, size: int = 8) -> None:
    """``b`` holds ``a``'s tensors strictly and computes the same outputs."""
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x))


def test_every_model_config_is_covered():
    covered = {name for name, *_ in AT_CONF_SIZE} | {name for name, _ in SMALL}
    assert covered | {"bicubic"} == set(MODELS)  # bicubic has no weights to detect


@pytest.mark.parametrize("name,scale,expected", AT_CONF_SIZE)
def test_a_configured_network_is_named_and_sized_from_its_weights(name, scale, expected):
    original = build(name, config_args(name, scale))
    found = detect_architecture(original.state_dict())
    assert found is not None and found[0] == expected
    assert found[1]["scale"] == scale
    same_network(original, build(*found))


@pytest.mark.parametrize("name,args", SMALL, ids=[n for n, _ in SMALL])
def test_sizes_the_configs_do_not_have_are_read_from_the_shapes(name, args):
    original = build(name, {**config_args(name, args["scale"]), **args})
    found = detect_architecture(original.state_dict())
    assert found is not None
    for key, value in args.items():
        assert found[1][key] == value, key
    rebuilt = build(*found)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in original.state_dict().items()
    }
    if name != "edsr_teacher":  # its residual scaling 0.1 is not in any shape
        same_network(original, rebuilt)


def test_the_swinir_head_count_comes_from_the_bias_table():
    args = {"scale": 2, "embed_dim": 12, "depths": [1, 1], "num_heads": [4, 6]}
    found = detect_architecture(build("swinir_student", args).state_dict())
    assert found[1]["num_heads"] == [4, 6] and found[1]["window_size"] == 8


def test_official_edsr_names_are_detected_after_conversion():
    official = {}
    for key, value in (
        build("edsr_tiny_student", config_args("edsr_tiny_student", 2)).state_dict().items()
    ):
        key = key.replace("conv_first.", "head.0.").replace("conv_after_body.", "body.2.")
        key = key.replace("upsample.", "tail.0.").replace("conv_last.", "tail.1.")
        key = key.replace(".conv1.", ".body.0.").replace(".conv2.", ".body.2.")
        official[key] = value
    found = detect_architecture(convert_official_keys(official))
    assert found == ("edsr_tiny_student", {"scale": 2, "num_feat": 16, "num_block": 2})


def test_unknown_weights_are_not_guessed():
    assert detect_architecture({"weight": torch.zeros(3, 3)}) is None
    span_of_another_width = build("span_ch26", {"scale": 4}).state_dict()
    span_of_another_width["conv_1.eval_conv.weight"] = torch.zeros(30, 3, 3, 3)
    assert detect_architecture(span_of_another_width) is None


def test_metadata_round_trips_and_is_checked():
    args = {"scale": 2, "num_feat": 16, "num_block": 2}
    assert from_metadata(to_metadata("edsr_tiny_student", args)) == ("edsr_tiny_student", args)
    assert from_metadata({"format": "pt"}) is None
    with pytest.raises(BuildRecordError, match="not one of srdistill's models"):
        from_metadata({"srdistill_model": "os.system", "srdistill_model_args": "{}"})
    with pytest.raises(BuildRecordError, match="model_args.scale"):
        from_metadata({"srdistill_model": "span_ch26", "srdistill_model_args": '{"scale": 5}'})
