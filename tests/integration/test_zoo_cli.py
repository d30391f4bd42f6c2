"""Zoo and spandrel teachers through the real entry points (local files only, never a download)."""

import hashlib
import json

import pytest
import torch

from tests.helpers.cli import assert_one_line_error, run_script

spandrel = pytest.importorskip("spandrel")


@pytest.fixture(scope="module")
def compact_x2(tmp_path_factory):
    """A tiny random Real-ESRGAN Compact (SRVGGNetCompact) at x2: an architecture srdistill
    does not implement, saved as a plain state dict."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    network = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)
    path = tmp_path_factory.mktemp("spandrel") / "compact_x2.pth"
    torch.save(network.state_dict(), path)
    return path


def offline_run(script: str, tmp_path, *overrides: str):
    # an empty hub cache of the test's own, so nothing a user fetched is found
    env = {"TORCH_HOME": str(tmp_path / "torch"), "WANDB_MODE": "offline"}
    return run_script(script, *overrides, env=env)


@pytest.mark.slow
def test_a_spandrel_checkpoint_teaches_a_smoke_run(tmp_path, compact_x2):
    proc = offline_run(
        "train.py",
        tmp_path,
        "experiment=smoke",
        "loss=kd",
        "teacher=spandrel",
        f"teacher.ckpt={compact_x2}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["steps"] == 4
    assert results["teacher"]["arch"] == "spandrel"
    assert results["teacher"]["architecture"] == "Compact"
    assert results["teacher"]["path"] == str(compact_x2)
    teacher_psnr = results["comparison"]["teacher"]["SampleVal"]["psnr"]
    assert 5 < teacher_psnr < 40  # a random Compact: scored, not good


@pytest.mark.slow
def test_eval_scores_a_spandrel_checkpoint(tmp_path, compact_x2):
    out = tmp_path / "results.json"
    proc = offline_run(
        "eval.py", tmp_path, "model=spandrel", f"ckpt={compact_x2}", "scale=2", f"out={out}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 5 < json.loads(out.read_text())["SampleVal"]["psnr"] < 40


def test_a_local_file_is_verified_against_its_zoo_entry(tmp_path):
    fake = tmp_path / "team38_span_ch28_slim.pth"
    torch.save({"conv_1.eval_conv.weight": torch.zeros(1)}, fake)
    proc = offline_run(
        "train.py",
        tmp_path,
        "backbone=span",
        "teacher=zoo/span_ch28_x4",
        f"teacher.ckpt={fake}",
        "trainer.max_steps=1",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert_one_line_error(proc, str(fake), "does not match", "span_ch28_x4", "6c80f050")


def fake_release(tmp_path) -> str:
    """Another file in the hub cache under the released SPAN-Tiny file's name (a rename by
    mistake, a tampered cache); returns its SHA-256."""
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    fake = checkpoints / "team39_spantiny_ch26_slim.pth"
    torch.save({"conv_1.eval_conv.weight": torch.zeros(1)}, fake)
    return hashlib.sha256(fake.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("script", "options", "says"),
    [
        ("train.py", ["teacher=zoo/span_tiny_ch26_x4", "teacher.sha256='2'"], "64 hex digits"),
        ("train.py", ["teacher=zoo/span_tiny_ch26_x4", "teacher.sha256=12345678"], "quote it"),
        ("train.py", ["teacher=zoo/span_tiny_ch26_x4", "teacher.sha256=OWN"], "overridden"),
        ("eval.py", ["ckpt=zoo:span_tiny_ch26_x4", "sha256=2"], "64 hex digits"),
        ("eval.py", ["ckpt=zoo:span_tiny_ch26_x4", "sha256=OWN"], "overridden"),
    ],
)
def test_another_file_under_a_published_name_is_refused_whatever_the_pin(
    tmp_path, script, options, says
):
    own = fake_release(tmp_path)
    options = [o.replace("OWN", own) for o in options]
    if script == "train.py":
        options.append("backbone=span")
    proc = offline_run(script, tmp_path, *options, f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_line_error(proc, "sha256=", says)
    assert not (tmp_path / "run" / "results.json").exists()


def test_a_zoo_teacher_at_another_scale_is_one_line_before_any_download(tmp_path):
    proc = offline_run(
        "train.py",
        tmp_path,
        "experiment=smoke",
        "teacher=zoo/edsr_x4",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert_one_line_error(proc, "edsr_x4", "scale=4")
    assert not (tmp_path / "torch").exists()


@pytest.mark.slow
def test_an_unknown_zoo_name_is_one_line(tmp_path):
    proc = offline_run(
        "train.py",
        tmp_path,
        "experiment=smoke",
        "teacher.ckpt=zoo:edsr_x5",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert_one_line_error(proc, "edsr_x5", "edsr_x4")


def test_a_pin_without_a_file_to_check_is_refused(tmp_path):
    proc = offline_run("eval.py", tmp_path, "sha256=" + "0" * 64, "scale=4")
    assert_one_line_error(proc, "sha256=", "ckpt is not set")
