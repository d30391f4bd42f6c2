"""train.py logger=wandb offline: what the run folder's W&B records hold, read back from disk."""

import base64
import hashlib
import json
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.helpers.shared import REPO_ROOT
from tests.helpers.training import train_process
from tests.helpers.wandb_offline import read_offline_run

pytestmark = pytest.mark.slow  # one smoke run with W&B (about 20 s on a laptop CPU)

CAPTION = "LR (nearest) | bicubic | teacher | {} | HR"


def build_wandb_run(root) -> None:
    run_dir, home = root / "run", root / "wandb_home"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")
        for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
            env.setenv(name, str(home / name.lower()))  # artifact staging stays out of ~
        train_process(
            run_dir,
            "loss=kd",
            "logger=wandb",
            "module.grad_share_every=2",
            "wandb.student_artifact=true",
        )


@pytest.fixture(scope="session")
def wandb_run(built_once):
    """One smoke run (kd, x2, 4 steps, shares every 2 steps, student artifact on), offline."""
    run_dir = built_once("wandb_run", build_wandb_run) / "run"
    results = json.loads((run_dir / "results.json").read_text())
    return run_dir, results, read_offline_run(run_dir)


def test_run_is_named_tagged_grouped_and_finished(wandb_run):
    _, _, run = wandb_run
    assert run.run.display_name == "kd-tiny_x2_seed0"
    assert set(run.run.tags) == {"backbone=tiny", "method=kd", "lora=none", "x2", "seed=0"}
    assert run.run.run_group == "smoke" and run.run.job_type == "train"
    assert run.exit_code == 0


def test_config_is_the_resolved_config_and_the_code_that_ran(wandb_run):
    run_dir, results, run = wandb_run
    config = run.config
    assert config["seed"] == 0 and config["scale"] == 2 and config["run_dir"] == str(run_dir)
    assert config["trainer"]["max_steps"] == 4 and config["module"]["grad_share_every"] == 2
    assert config["loss"]["terms"]["resp"]["weight"] == 1.0
    assert config["tags"] == results["tags"]
    head = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert config["code"]["commit"] == results["code"]["commit"] == head
    assert isinstance(config["code"]["dirty"], bool) and config["code"]["version"]


def test_metrics_and_final_table_match_results_json(wandb_run):
    _, results, run = wandb_run
    psnr = [v for _, v in run.series("val/SampleVal/psnr_y")]
    assert psnr[-1] == pytest.approx(results["val"]["val/SampleVal/psnr_y"], abs=1e-9)
    comparison = results["comparison"]
    for model, per_set in comparison.items():
        for metric in ("psnr", "ssim"):
            assert run.summary[f"final/{model}/SampleVal/{metric}"] == per_set["SampleVal"][metric]
    (table,) = run.media("final/table")
    logged = json.loads((run.folder / "files" / table["path"]).read_text())
    assert logged["columns"] == ["model", "set", "psnr", "ssim"]
    expected = [
        [m, "SampleVal", s["SampleVal"]["psnr"], s["SampleVal"]["ssim"]]
        for m, s in comparison.items()
    ]
    assert logged["data"] == expected


def test_gradient_shares_are_charted_on_the_step_axis(wandb_run):
    _, results, run = wandb_run
    history = results["grad_share"]["history"]
    for key in ("resp/ratio", "resp/cos", "others/ratio"):
        logged = run.series(f"train/grad_share/{key}")
        assert logged == [(h["step"], pytest.approx(h[key], abs=1e-12)) for h in history]
    assert [step for step, _ in logged] == [0, 2]


def test_sample_strip_lands_as_a_captioned_image_of_five_panels(wandb_run):
    run_dir, _, run = wandb_run
    strips = run.media("train/samples")
    assert [s["captions"] for s in strips] == [  # step 2, then the deployed student at step 4
        [CAPTION.format("student, step 2")],
        [CAPTION.format("deployed student, step 4")],
    ]
    last = strips[-1]
    # SampleVal's two photos, a 128-pixel square each shown x2: 5 panels of 256, 4-pixel gaps,
    # a 24-pixel header
    assert (last["width"], last["height"]) == (1296, 540)
    logged = Image.open(run.folder / "files" / last["filenames"][0])
    on_disk = Image.open(run_dir / "samples" / "step_0000004_deployed.png")
    assert np.array_equal(np.asarray(logged.convert("RGB")), np.asarray(on_disk.convert("RGB")))


def test_exported_student_is_a_model_artifact(wandb_run):
    run_dir, results, run = wandb_run
    (artifact,) = [a for a in run.artifacts if a.type == "model"]
    assert artifact.name == "student-kd-tiny_x2_seed0"
    meta = json.loads(artifact.metadata)
    assert meta["architecture"] == "edsr_tiny_student" and meta["scale"] == 2
    assert meta["val"] == results["val"] and meta["code"] == results["code"]
    (entry,) = artifact.manifest.contents
    student = run_dir / "student.safetensors"
    assert entry.path == "student.safetensors"
    assert entry.digest == base64.b64encode(hashlib.md5(student.read_bytes()).digest()).decode()
    # the trained student's weights, not a fresh network's
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    weights = load_file(student)
    assert weights and all(torch.equal(weights[k], last[f"student.{k}"]) for k in weights)
