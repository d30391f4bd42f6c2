"""Self-describing models: the registry and detection come from each backbone's declarations."""

from __future__ import annotations

import builtins
import importlib
import io
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import srdistill.models
from srdistill.models import backbones
from srdistill.models.argument_checks import SCALE, BuildRecordError, integer
from srdistill.models.detect import config_args
from srdistill.models.registry import VARIANTS, target_path
from srdistill.models.variants import Family, Variant, _check_unique
from tests.helpers.configs import CONF_DIR, model_names


def composed_models() -> DictConfig:
    """Every conf/model YAML composed under ``all.<name>`` in one go (``scale`` left to set)."""
    overrides = [f"+model@all.{name}={name}" for name in model_names()] + ["+scale=2"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(overrides=overrides)


def test_every_registry_yaml_is_its_declaration_and_every_declaration_has_one():
    factories = {target_path(variant.factory) for variant in VARIANTS.values()}
    ours = set()
    cfg = composed_models()
    for name in model_names():
        if cfg.all[name]["_target_"] not in factories:
            continue  # built from its weights file (model=spandrel): not in the registry
        ours.add(name)
        assert name in VARIANTS, f"conf/model/{name}.yaml names a registry factory: declare it"
        variant = VARIANTS[name]
        for scale in (2, 3, 4):
            cfg.scale = scale
            composed = OmegaConf.to_container(cfg.all[name], resolve=True)
            expected = {"_target_": target_path(variant.factory), "scale": scale}
            assert composed == {**expected, **variant.defaults}, (name, scale)
    assert ours == set(VARIANTS)


def test_config_args_reads_no_config_folder(tmp_path, monkeypatch):
    """As in an installed package: no conf/ beside the code, no file opened at all."""

    def no_file(*args, **kwargs):
        raise AssertionError(f"config_args opened {args[:1]}")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(builtins, "open", no_file)
    monkeypatch.setattr(io, "open", no_file)
    expected = {"scale": 4, "num_feat": 24, "num_block": 4, "bicubic_skip": True}
    assert config_args("edsr_sample_student", 4) == expected
    assert config_args("span_ch26", 2) == {"scale": 2, "reparameterized": True}
    assert config_args("bicubic") == {"scale": 4, "emulate_uint8": True}


TINYNET = '''
"""A new backbone, as a user adds one: a network, a factory, and its declaration."""
import math

from torch import nn

from srdistill.models.argument_checks import SCALE, integer
from srdistill.models.variants import Family, Variant


class TinyNet(nn.Module):
    def __init__(self, scale=4, width=8):
        super().__init__()
        self.scale = scale
        self.tiny_head = nn.Conv2d(3, width, 3, padding=1)
        self.tiny_tail = nn.Conv2d(width, 3 * scale * scale, 3, padding=1)

    def forward(self, x):
        return nn.functional.pixel_shuffle(self.tiny_tail(self.tiny_head(x)), self.scale)


def tinynet_w8(scale=4, **kwargs):
    return TinyNet(scale, **{"width": 8, **kwargs})


def read_shapes(state):
    if "tiny_head.weight" not in state:
        return None
    scale = math.isqrt(state["tiny_tail.weight"].shape[0] // 3)
    return {"scale": scale, "width": state["tiny_head.weight"].shape[0]}


FAMILY = Family(
    name="tinynet",
    variants=(Variant("tinynet_w8", tinynet_w8, {"scale": SCALE, "width": integer(1, 64)}),),
    read_shapes=read_shapes,
)
'''
TINYNET_MODULE = "srdistill.models.backbones.tinynet"


@pytest.fixture
def fresh_import_with_tinynet(tmp_path, monkeypatch):
    """``registry`` and ``detect`` imported anew with ``tinynet.py`` in the backbones package,
    as a new process would see them; everything is put back afterwards."""
    (tmp_path / "tinynet.py").write_text(TINYNET)
    importlib.invalidate_caches()
    monkeypatch.setattr(backbones, "__path__", [*backbones.__path__, str(tmp_path)])
    monkeypatch.setattr(backbones, "tinynet", None, raising=False)  # deleted again afterwards
    for name in ("registry", "detect"):
        monkeypatch.delitem(sys.modules, f"srdistill.models.{name}")
        monkeypatch.setattr(srdistill.models, name, getattr(srdistill.models, name))
    yield (
        importlib.import_module("srdistill.models.registry"),
        importlib.import_module("srdistill.models.detect"),
    )
    sys.modules.pop(TINYNET_MODULE, None)


def test_a_backbone_module_dropped_into_the_package_is_registered_and_detected(
    fresh_import_with_tinynet,
):
    registry, detect = fresh_import_with_tinynet
    tinynet = sys.modules[TINYNET_MODULE]
    assert "tinynet_w8" in registry.MODELS and list(registry.MODELS) == sorted(registry.MODELS)
    assert detect.config_args("tinynet_w8", 2) == {"scale": 2}
    with pytest.raises(registry.BuildRecordError, match="model_args.width"):
        registry.check_model("tinynet_w8", {"width": 65})
    network = registry.build_from_record("tinynet_w8", {"scale": 3, "width": 5}, None)
    assert isinstance(network, tinynet.TinyNet)
    assert detect.detect_architecture(network.state_dict()) == (
        "tinynet_w8",
        {"scale": 3, "width": 5},
    )
    edsr_args = detect.config_args("edsr_tiny_student", 2)
    edsr = registry.build_from_record("edsr_tiny_student", edsr_args, None)
    assert detect.detect_architecture(edsr.state_dict())[0] == "edsr_tiny_student"


def test_two_families_cannot_declare_one_name():
    variant = Variant("twin", torch.nn.Identity, {"scale": SCALE})
    with pytest.raises(ValueError, match="twin is declared by both families a and b"):
        _check_unique([Family("a", (variant,)), Family("b", (variant,))])


def test_a_declaration_is_checked_when_it_is_made():
    with pytest.raises(ValueError, match="must include scale"):
        Variant("noscale", torch.nn.Identity, {})
    with pytest.raises(ValueError, match="depth is not one of its arguments"):
        Variant("odd", torch.nn.Identity, {"scale": SCALE}, {"depth": 2})
    with pytest.raises(BuildRecordError, match="deep.depth must be an integer"):
        Variant("deep", torch.nn.Identity, {"scale": SCALE, "depth": integer(1, 8)}, {"depth": 9})
