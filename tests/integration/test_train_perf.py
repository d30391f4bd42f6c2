"""train.py's device paths on every device: bf16 mixed precision, channels_last with a bf16
teacher, torch.compile and DDP each train the smoke run, write the usual files and keep what the
default run computes. CPU always; CUDA under the ``gpu`` marker (``pytest -m gpu``)."""

import json

import pytest
import torch
from hydra.utils import instantiate

from srdistill.models.checkpoint import load_weights
from srdistill.models.run_student import deployed_student
from tests.helpers.cli import export_last_checkpoint
from tests.helpers.configs import compose_config
from tests.helpers.devices import TRAINER, on_devices
from tests.helpers.training import SMOKE_RUNS, student_state, train, train_process

MCAD = SMOKE_RUNS["mcad"]
# inductor needs a C/C++ compiler on the CPU (slow to build); aot_eager traces the same graph
COMPILE_BACKEND = {"cpu": "aot_eager", "cuda": "inductor"}
DDP = {
    "cpu": ("trainer=ddp_cpu", "trainer.devices=2"),
    "cuda": ("trainer=ddp", "trainer.devices=2"),
}


def psnr(run_dir) -> float:
    return json.loads((run_dir / "results.json").read_text())["val"]["val/SampleVal/psnr_y"]


def default_run(smoke_run, device: str):
    """The mcad smoke run on ``device`` (on the CPU, the very run the smoke test reads)."""
    overrides = MCAD if device == "cpu" else (*MCAD, TRAINER[device])
    return smoke_run(*overrides)[0]


def check_exported_student_loads(run_dir, tmp_path) -> None:
    out = tmp_path / "student.pth"
    export_last_checkpoint(run_dir, out)
    student = instantiate(compose_config("train", ["experiment=smoke"]).student.arch)
    load_weights(student, out, model_name="student", option="ckpt")  # strict
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(
            student(x), deployed_student(run_dir / "checkpoints" / "last.ckpt")(x)
        )


@on_devices()
def test_channels_last_with_a_bf16_teacher_trains_like_the_default(smoke_run, tmp_path, device):
    default = default_run(smoke_run, device)
    fast = tmp_path / "fast"
    train(fast, *MCAD, TRAINER[device], "perf.channels_last=true", "perf.teacher_autocast=bf16")
    default_state = student_state(default / "checkpoints" / "last.ckpt")
    fast_state = student_state(fast / "checkpoints" / "last.ckpt")
    assert fast_state.keys() == default_state.keys()
    assert abs(psnr(fast) - psnr(default)) < 0.1
    check_exported_student_loads(fast, tmp_path)


@on_devices(cpu_marks=pytest.mark.slow)
def test_bf16_mixed_precision_trains(tmp_path, device):
    # 2 steps and no closing table: bf16 convolutions are slow on a CPU
    steps = ("trainer.max_steps=2", "final_table=false")
    train(tmp_path, *MCAD, TRAINER[device], "trainer.precision=bf16-mixed", *steps)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["steps"] == 2 and results["val"]["val/SampleVal/psnr_y"] > 5


@on_devices(cpu_marks=pytest.mark.slow)
def test_compiled_run_writes_checkpoints_without_the_compile_wrapper(smoke_run, tmp_path, device):
    default = default_run(smoke_run, device)
    compiled = tmp_path / "compiled"
    backend = f"perf.compile_backend={COMPILE_BACKEND[device]}"
    train(compiled, *MCAD, TRAINER[device], "perf.compile=true", backend)
    state = student_state(compiled / "checkpoints" / "last.ckpt")
    assert not any("_orig_mod" in key for key in state)
    assert state.keys() == student_state(default / "checkpoints" / "last.ckpt").keys()
    assert abs(psnr(compiled) - psnr(default)) < 0.05
    check_exported_student_loads(compiled, tmp_path)


@on_devices(cpu_marks=pytest.mark.slow, min_gpus=2)
def test_ddp_with_two_processes(tmp_path, device):
    # a real process: DDP starts its second rank as a copy of the command line
    proc = train_process(tmp_path, *MCAD, *DDP[device])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["steps"] == 4
    logs = proc.stdout + proc.stderr
    backend = {"cpu": "gloo", "cuda": "nccl"}[device]
    assert "world_size=2" in logs or f"distributed_backend={backend}" in logs
