"""What a W&B run is called, tagged and grouped by, and which code version it records."""

import subprocess

import pytest

from srdistill.training.wandb_run import (
    MAX_TAG_LENGTH,
    artifact_name,
    check_project,
    check_run_tags,
    code_version,
    run_group,
    run_name,
    run_tag_list,
    training_wandb_logger,
)
from tests.helpers.configs import compose_config

TABLE_RUN = {
    "table": "dsclora_tab5",
    "backbone": "span",
    "method": "dsclora",
    "scale": 4,
    "seed": 2,
}
PLAIN_RUN = {"table": None, "backbone": "swinir", "method": "mcad", "scale": 3, "seed": 0}


def test_name_says_method_backbone_lora_scale_and_seed():
    assert run_name(PLAIN_RUN, "none") == "mcad-swinir_x3_seed0"
    assert run_name(PLAIN_RUN, None) == "mcad-swinir_x3_seed0"
    assert run_name(TABLE_RUN, "lora_rank2") == "dsclora-span+lora_rank2_x4_seed2"


def test_tags_name_the_table_only_when_set():
    assert run_tag_list(PLAIN_RUN, "none") == [
        "backbone=swinir",
        "method=mcad",
        "lora=none",
        "x3",
        "seed=0",
    ]
    tags = run_tag_list(TABLE_RUN, "lora")
    assert "table=dsclora_tab5" in tags and "lora=lora" in tags and "x4" in tags


@pytest.mark.parametrize(
    "field,option",
    [("method", "tags.method"), ("table", "tags.table"), ("backbone", "tags.backbone")],
)
def test_a_tag_longer_than_w_and_b_takes_names_its_option(field, option):
    long_value = "x" * MAX_TAG_LENGTH  # with its "<field>=" prefix, over the limit
    with pytest.raises(ValueError, match=rf"^{option}: the W&B tag .* shorten {option}$"):
        check_run_tags({**TABLE_RUN, field: long_value}, "none")


def test_a_long_lora_choice_names_the_lora_option():
    with pytest.raises(ValueError, match="^lora: "):
        check_run_tags(PLAIN_RUN, "l" * MAX_TAG_LENGTH)


def test_tags_up_to_the_limit_pass():
    check_run_tags({**TABLE_RUN, "table": "t" * (MAX_TAG_LENGTH - len("table="))}, "lora")


@pytest.mark.parametrize("project", ["my/proj", "a:b", "50%", "why?", "c#d", "e\\f", "p" * 129])
def test_a_project_name_w_and_b_refuses_names_its_option(project):
    with pytest.raises(ValueError, match=r"^logger\.0\.project.*W&B"):
        check_project(project, "logger.0.project")


@pytest.mark.parametrize("project", ["srdistill", "my-proj_2.0 x", "p" * 128, None])
def test_project_names_w_and_b_takes_pass(project):
    check_project(project, "logger.0.project")


def test_group_is_the_experiment_and_nothing_for_a_single_plain_run():
    assert run_group("mcad_tab3") == "mcad_tab3"
    assert run_group(None) is None  # outside a Hydra multirun


def test_artifact_names_keep_only_allowed_characters():
    assert artifact_name("dsclora-span+lora_x4_seed2") == "student-dsclora-span_lora_x4_seed2"


def test_logger_carries_name_tags_group_and_job_type(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    logger = training_wandb_logger("p", str(tmp_path), TABLE_RUN, "lora", "dsclora_tab5")
    init = logger._wandb_init
    assert init["name"] == "dsclora-span+lora_x4_seed2" and init["group"] == "dsclora_tab5"
    assert init["job_type"] == "train" and init["tags"] == run_tag_list(TABLE_RUN, "lora")


def _git(folder, *args):
    return subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_code_version_is_the_checkout_commit_and_dirty_flag(tmp_path):
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    clean = code_version(package)
    assert clean["commit"] == _git(tmp_path, "rev-parse", "HEAD") and clean["dirty"] is False
    (package / "__init__.py").write_text("x = 2\n")
    assert code_version(package)["dirty"] is True


def test_code_version_outside_a_checkout_or_untracked_is_unknown(tmp_path):
    assert code_version(tmp_path) == {**code_version(tmp_path), "commit": "unknown", "dirty": None}
    # a package in an untracked folder of some repository (a venv inside a clone) is not its code
    _git(tmp_path, "init", "-q")
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "__init__.py").write_text("")
    assert code_version(tmp_path / "venv")["commit"] == "unknown"


def _hydra_in(mode) -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    cfg = compose_config("train", ["hydra.sweep.dir=multirun/2026-01-02_03-04-05"], hydra=True)
    with open_dict(cfg):
        cfg.hydra.mode = mode
    HydraConfig.instance().set_config(cfg)


def test_a_sweep_without_experiment_groups_by_its_sweep_folder():
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    previous = HydraConfig.instance().cfg
    try:
        _hydra_in(RunMode.MULTIRUN)
        assert run_group(None) == "sweep-2026-01-02_03-04-05"
        assert run_group("mcad_tab3") == "mcad_tab3"
        _hydra_in(RunMode.RUN)
        assert run_group(None) is None
    finally:
        HydraConfig.instance().cfg = previous
