"""Build records: plain values from an allow-list, the same on the training and export sides."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from srdistill.models.backbones.edsr import EDSR
from srdistill.models.checkpoint import CheckpointError
from srdistill.models.registry import (
    MODELS,
    BuildRecordError,
    build_from_record,
    build_record_of,
    check_lora,
    check_model,
    model_name_for,
    target_path,
)
from srdistill.models.run_student import deployed_student
from tests.helpers.configs import compose_config, model_names

HEAVY = {"edsr_teacher", "rcan_teacher", "swinir_teacher", "sample_teacher", "bicubic"}


def composed_model(name: str, scale: int = 4) -> dict:
    cfg = compose_config("eval", [f"model={name}", f"scale={scale}"])
    return OmegaConf.to_container(cfg.model, resolve=True)


# model=spandrel builds whatever its weights file holds: never rebuilt from a record
FROM_FILE = {"spandrel"}


def test_every_model_config_is_allowed_by_its_own_constructor():
    names = [n for n in model_names() if n not in FROM_FILE]
    assert sorted(MODELS) == names
    for name in names:
        assert model_name_for(name, composed_model(name)["_target_"]) == name


@pytest.mark.parametrize("name", sorted(set(MODELS) - HEAVY))
def test_the_record_rebuilds_what_the_config_builds(name):
    arch = composed_model(name)
    record = build_record_of(name, arch, None, None)
    assert "_target_" not in record["model_args"] and record["model"] == name
    torch.manual_seed(0)
    expected = instantiate(arch)
    torch.manual_seed(0)
    rebuilt = build_from_record(record["model"], record["model_args"], record["lora"])
    assert type(rebuilt) is type(expected)
    own, other = expected.state_dict(), rebuilt.state_dict()
    assert own.keys() == other.keys()
    assert all(torch.equal(own[k], other[k]) for k in own)


def test_lora_is_recorded_without_its_target_and_rebuilds_the_same_adapters():
    cfg = compose_config("train", ["backbone=span", "lora=lora_plus"])
    lora = OmegaConf.to_container(cfg.lora, resolve=True)
    record = build_record_of("span_ch26", composed_model("span_ch26"), lora, 0.5)
    assert set(record["lora"]) == {
        "targets", "scaling", "a_init", "train_a", "train_bias", "b_lr_ratio", "freeze_base"
    }  # fmt: skip
    assert record["lora"]["b_lr_ratio"] == 16.0 and record["average_weight"] == 0.5
    configured = instantiate(cfg.student.arch)
    instantiate(cfg.lora).apply(configured)
    rebuilt = build_from_record("span_ch26", record["model_args"], record["lora"])
    assert rebuilt.state_dict().keys() == configured.state_dict().keys()


def test_a_custom_target_trains_but_the_record_says_export_cannot_rebuild_it():
    arch = {**composed_model("edsr_tiny_student"), "_target_": "my_package.MyNet"}
    record = build_record_of("edsr_tiny_student", arch, None, None)
    assert record["model"] is None and "my_package.MyNet" in record["unavailable"]
    edsr_with_callable = {**composed_model("edsr_tiny_student"), "act_layer": "torch.nn.GELU"}
    assert build_record_of("edsr_tiny_student", edsr_with_callable, None, None)["model"] is None


@pytest.mark.parametrize(
    "model,args,field",
    [
        ("os.system", {}, "model 'os.system'"),
        (["span_ch26"], {}, "model ['span_ch26']"),
        ("span_ch26", {"scale": 5}, "model_args.scale"),
        ("span_ch26", {"scale": True}, "model_args.scale"),
        ("span_ch26", {"scale": "4"}, "model_args.scale"),
        ("span_ch26", {"feature_channels": 8}, "['feature_channels']"),
        ("span_ch26", {"reparameterized": 1}, "model_args.reparameterized"),
        ("edsr_tiny_student", {"num_feat": 4097}, "model_args.num_feat"),
        ("edsr_tiny_student", {"num_feat": 0}, "model_args.num_feat"),
        ("edsr_tiny_student", {"res_scale": float("nan")}, "model_args.res_scale"),
        ("edsr_tiny_student", {"act_layer": "os.system"}, "['act_layer']"),
        ("edsr_tiny_student", {"_target_": "os.system"}, "['_target_']"),
        ("edsr_tiny_student", "scale=4", "model_args"),
        ("swinir_light", {"depths": [6] * 13}, "model_args.depths"),
        ("swinir_light", {"upsampler": "os.system"}, "model_args.upsampler"),
    ],
)
def test_a_model_field_outside_the_allow_list_is_named(model, args, field):
    with pytest.raises(BuildRecordError) as err:
        check_model(model, args)
    assert field in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "lora,field",
    [
        ({"_target_": "os.system", "targets": []}, "lora._target_"),
        ({"targets": []}, "lora.targets"),
        ({"targets": "conv"}, "lora.targets"),
        ({"targets": [{"pattern": "x", "rank": 0}]}, "lora.targets[0].rank"),
        ({"targets": [{"pattern": "x", "rank": 2.0}]}, "lora.targets[0].rank"),
        ({"targets": [{"pattern": "x" * 257, "rank": 2}]}, "lora.targets[0].pattern"),
        ({"targets": [{"pattern": "(", "rank": 2}]}, "lora.targets[0].pattern"),
        ({"targets": [{"pattern": "x", "rank": 2, "fn": "os.system"}]}, "lora.targets[0]"),
        ({"targets": [{"pattern": "x", "rank": 2, "alpha": "4"}]}, "lora.targets[0].alpha"),
        ({"targets": [{"pattern": "x", "rank": 2}], "scaling": "os.system"}, "lora.scaling"),
        ({"targets": [{"pattern": "x", "rank": 2}], "a_init": "eval"}, "lora.a_init"),
        ({"targets": [{"pattern": "x", "rank": 2}], "train_a": "yes"}, "lora.train_a"),
        ({"targets": [{"pattern": "x", "rank": 2}], "b_lr_ratio": 0}, "lora.b_lr_ratio"),
        ({"targets": [{"pattern": "x", "rank": 2}], "apply": "os.system"}, "['apply']"),
    ],
)
def test_a_lora_field_outside_the_allow_list_is_named(lora, field):
    with pytest.raises(BuildRecordError) as err:
        check_lora(lora)
    assert field in str(err.value)


def test_the_allowed_targets_are_the_constructors_the_configs_name():
    assert target_path(MODELS["span_ch26"][0]) == "srdistill.models.backbones.span.span_ch26"
    assert target_path(MODELS["edsr_tiny_student"][0]) == "srdistill.models.backbones.edsr.EDSR"
    assert model_name_for("span_ch26", "srdistill.models.backbones.edsr.EDSR") is None
    assert model_name_for("model@student.arch", "os.system") is None


def test_a_record_asking_for_more_than_its_weights_hold_allocates_nothing(tmp_path):
    """A 4096-channel, 256-block EDSR would need about a terabyte: the sizes are checked on the
    meta device against the file's own weights first."""
    save_run(tmp_path / "big.ckpt", {"model": "edsr_tiny_student", "model_args": BIG_EDSR})
    with pytest.raises(CheckpointError, match="does not fit its weights"):
        deployed_student(tmp_path / "big.ckpt")


BIG_EDSR = {"scale": 2, "num_feat": 4096, "num_block": 256}
TINY_EDSR = {"scale": 2, "num_feat": 16, "num_block": 2}


def save_run(path, student_build, **extra):
    torch.manual_seed(0)
    weights = EDSR(**TINY_EDSR).state_dict()
    state = {f"student.{k}": v for k, v in weights.items()}
    torch.save({"state_dict": state, "student_build": student_build, **extra}, path)


@pytest.mark.parametrize(
    "build,extra,needle",
    [
        ({"model": None, "unavailable": "student.arch._target_=my.Net"}, {}, "my.Net"),
        ({"model": "edsr_tiny_student", "model_args": TINY_EDSR, "average_weight": 2}, {}, "avera"),
        (
            {"model": "edsr_tiny_student", "model_args": TINY_EDSR, "average_weight": 0.5},
            {"pretrained_student": {"conv_first.weight": "os.system"}},
            "pretrained_student",
        ),
        (["edsr_tiny_student"], {}, "student_build"),
    ],
    ids=["custom target", "average weight", "pretrained not tensors", "not a table"],
)
def test_export_refuses_a_record_it_cannot_trust_in_one_line(tmp_path, build, extra, needle):
    save_run(tmp_path / "run.ckpt", build, **extra)
    with pytest.raises(CheckpointError) as err:
        deployed_student(tmp_path / "run.ckpt")
    assert needle in str(err.value) and "run.ckpt" in str(err.value)
    assert "\n" not in str(err.value)
