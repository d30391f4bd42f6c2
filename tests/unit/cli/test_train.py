"""Options of train.py checked before any work: stages under a step cap, required options."""

from __future__ import annotations

import logging

import pytest

from srdistill.cli.common import check_required, check_scale
from srdistill.cli.stages import stage_configs
from tests.helpers.configs import compose_config


def _stages(*overrides: str):
    cfg = compose_config("train", ["experiment=dsclora", "data.root=/data", *overrides])
    return stage_configs(cfg)


def test_stages_follow_the_recipe_when_max_steps_covers_them():
    stages = _stages()
    assert [(s.trainer.max_steps, s.data.lr_patch_size) for s in stages] == [
        (100000, 64),
        (150000, 96),
    ]


def test_max_steps_caps_the_stages_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="srdistill.cli.stages"):
        stages = _stages("trainer.max_steps=20")
    assert [(s.trainer.max_steps, s.data.lr_patch_size) for s in stages] == [(20, 64)]
    assert "caps stage 1" in caplog.text and "stage 2" in caplog.text


def test_max_steps_inside_the_second_stage_shortens_only_that_one():
    stages = _stages("trainer.max_steps=120000")
    assert [s.trainer.max_steps for s in stages] == [100000, 120000]


def test_required_options_are_named_together():
    cfg = compose_config("train", ["experiment=dsclora"])
    with pytest.raises(ValueError, match=r"^data\.root not set"):
        check_required(cfg)


@pytest.mark.parametrize("scale", [0, -1, "4", 2.0, True, None])
def test_scale_must_be_a_positive_integer(scale):
    with pytest.raises(ValueError, match="scale="):
        check_scale(scale)


def test_a_callback_set_to_null_is_switched_off(tmp_path):
    from srdistill.cli.builders import build_trainer
    from srdistill.training.callbacks import SampleStrips
    from srdistill.training.checkpointing import LastCheckpoint

    overrides = ["experiment=smoke", f"run_dir={tmp_path}", "logger=[]"]
    with_strips = build_trainer(compose_config("train", overrides), loggers=False)
    assert any(isinstance(c, SampleStrips) for c in with_strips.callbacks)
    trainer = build_trainer(compose_config("train", [*overrides, "callbacks.samples=null"]), False)
    assert not any(isinstance(c, SampleStrips) for c in trainer.callbacks)
    assert any(isinstance(c, LastCheckpoint) for c in trainer.callbacks)


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("callbacks.samples.images=0", ["callbacks.samples.images=0"]),
        ("callbacks.samples.crop_size=true", ["callbacks.samples.crop_size=True"]),
        ("progress_every_n_steps=0", ["progress_every_n_steps=0", "null"]),
        ("trainer.max_steps=-2", ["trainer.max_steps=-2", ">= 0", "-1: no limit"]),
    ],
)
def test_step_and_size_options_are_refused_before_any_data(tmp_path, override, words):
    from hydra.errors import InstantiationException

    from srdistill.cli.preflight import check_callbacks, check_max_steps

    cfg = compose_config("train", ["experiment=smoke", f"run_dir={tmp_path}", override])
    with pytest.raises((ValueError, InstantiationException)) as raised:
        check_max_steps(cfg)
        check_callbacks(cfg)
    error = raised.value.__cause__ or raised.value
    assert all(word in str(error) for word in words), str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize("override", ["trainer.max_steps=-1", "progress_every_n_steps=null"])
def test_no_limit_and_no_progress_lines_are_accepted(tmp_path, override):
    from srdistill.cli.preflight import check_callbacks, check_max_steps

    cfg = compose_config("train", ["experiment=smoke", f"run_dir={tmp_path}", override])
    check_max_steps(cfg)
    check_callbacks(cfg)
