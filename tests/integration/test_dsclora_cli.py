"""DSCLoRA through the real CLI: two stages, merge + average, export, strict reload."""

import json
from pathlib import Path

import pytest
import torch

from srdistill.data.samples import VAL_SET, materialize_samples
from srdistill.eval.benchmark import evaluate_benchmarks
from srdistill.eval.cost import count_parameters
from srdistill.lora.inject import LoRASpec
from srdistill.models.backbones.span import span_ch26, span_ch28
from srdistill.models.checkpoint import read_state_dict
from srdistill.models.run_student import deployed_student
from tests.helpers.cli import assert_one_line_error, export_last_checkpoint, run_script
from tests.helpers.training import train

TWO_STAGES = "stages=[{until_step:2,lr_patch_size:16},{until_step:4,lr_patch_size:24}]"


def run_args(root: Path) -> list[str]:
    return [
        "experiment=dsclora_cpu",
        "data=samples",
        "val.root=null",
        f"val.sets=[{VAL_SET}]",
        f"student.ckpt={root / 'student.pth'}",
        f"teacher.ckpt={root / 'teacher.pth'}",
        TWO_STAGES,
        "trainer.val_check_interval=4",
        "trainer.deterministic=true",
        "num_workers=0",
        "optimizer.lr=1e-2",  # large enough that 4 steps visibly move the adapters
        "module.average_weight=0.5",
    ]


def build_dsclora_run(root: Path) -> None:
    torch.manual_seed(0)
    torch.save(span_ch26().state_dict(), root / "student.pth")
    torch.save(span_ch28().state_dict(), root / "teacher.pth")
    train(root / "run", *run_args(root))


@pytest.fixture(scope="session")
def dsclora_run(built_once) -> Path:
    """A 4-step DSCLoRA run on the sample photos from random SPAN-Tiny / SPAN ch28 weights."""
    return built_once("dsclora_run", build_dsclora_run)


def test_two_stages_run_in_one_experiment(dsclora_run):
    checkpoints = dsclora_run / "run" / "checkpoints"
    stage1 = torch.load(checkpoints / "stage1-end.ckpt", weights_only=True)
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert stage1["global_step"] == 2 and last["global_step"] == 4
    assert json.loads((dsclora_run / "run" / "results.json").read_text())["steps"] == 4


@pytest.mark.slow
def test_resuming_at_the_stage_boundary_runs_only_stage_two(dsclora_run, tmp_path):
    stage1 = dsclora_run / "run" / "checkpoints" / "stage1-end.ckpt"
    train(tmp_path, *run_args(dsclora_run), f"ckpt_path={stage1}")
    assert not (tmp_path / "checkpoints" / "stage1-end.ckpt").exists()
    resumed = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    whole = torch.load(dsclora_run / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 4
    for key, value in whole["state_dict"].items():
        if key.startswith("student"):
            torch.testing.assert_close(resumed["state_dict"][key], value, msg=key)


@pytest.mark.parametrize("fmt,suffix", [("slim", "pth"), ("safetensors", "safetensors")])
def test_export_round_trips_into_plain_span(dsclora_run, tmp_path, fmt, suffix):
    out = tmp_path / f"student.{suffix}"
    ckpt = dsclora_run / "run" / "checkpoints" / "last.ckpt"
    proc = run_script("export.py", f"ckpt={ckpt}", f"out={out}", f"format={fmt}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    plain = span_ch26()
    plain.load_state_dict(read_state_dict(out), strict=True)
    assert count_parameters(plain) == 130_828
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), deployed_student(ckpt)(x))
    # the exported network is what the run's final table measured
    results = json.loads((dsclora_run / "run" / "results.json").read_text())
    measured = evaluate_benchmarks(plain, materialize_samples(), [VAL_SET], 4)
    assert measured[VAL_SET]["psnr"] == results["comparison"]["student"][VAL_SET]["psnr"]


def test_export_is_the_average_of_merged_and_pretrained(dsclora_run):
    ckpt = torch.load(dsclora_run / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    adapted = span_ch26()
    LoRASpec(ckpt["student_build"]["lora"]["targets"]).apply(adapted)
    prefix = "student_ema.module."
    adapted.load_state_dict(
        {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    )
    pretrained = torch.load(dsclora_run / "student.pth", weights_only=True)
    exported = deployed_student(dsclora_run / "run" / "checkpoints" / "last.ckpt")
    name = "upsampler.0"
    delta = adapted.get_submodule(name).delta_weight()
    assert delta.abs().max() > 0
    torch.testing.assert_close(
        exported.get_submodule(name).weight, pretrained[f"{name}.weight"] + 0.5 * delta
    )
    untouched = "conv_cat.weight"
    assert torch.equal(exported.state_dict()[untouched], pretrained[untouched])


def test_export_of_a_plain_weights_file_detects_or_is_one_line(tmp_path):
    torch.save(span_ch26().state_dict(), tmp_path / "plain.pth")
    proc = run_script("export.py", f"ckpt={tmp_path / 'plain.pth'}", f"out={tmp_path / 'x.pth'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    torch.save({"weight": torch.zeros(2)}, tmp_path / "unknown.pth")
    proc = run_script("export.py", f"ckpt={tmp_path / 'unknown.pth'}", f"out={tmp_path / 'y.pth'}")
    assert_one_line_error(proc, "unknown.pth", "cannot tell its architecture", "model")


def test_averaging_without_a_student_checkpoint_is_one_line(tmp_path):
    proc = run_script(
        "train.py",
        "experiment=dsclora_cpu",
        "data=samples",
        "student.ckpt=null",
        "teacher.require_ckpt=false",
        f"hydra.run.dir={tmp_path}",
    )
    assert_one_line_error(proc, "student.ckpt")


def test_training_form_span_exports_the_folded_slim_format(tmp_path):
    train(
        tmp_path / "run",
        "backbone=span",
        "loss=kd",
        "scale=4",
        "teacher.require_ckpt=false",
        "student.arch.reparameterized=false",
        "data.lr_patch_size=16",
        "trainer.max_steps=2",
        "final_table=false",
    )
    out = tmp_path / "student.pth"
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    export_last_checkpoint(tmp_path / "run", out)
    state = read_state_dict(out)
    assert all(".sk." not in k and ".conv." not in k for k in state)
    plain = span_ch26()
    plain.load_state_dict(state, strict=True)
    trained = deployed_student(ckpt)
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), trained(x))
