"""train.py with the ``perf:`` speed options: same run, same files, loadable by the loaders."""

import json

import pytest
import torch
from hydra.utils import instantiate

from srdistill.export import deployed_student
from srdistill.models.checkpoint import load_weights
from tests.helpers.cli import export_last_checkpoint
from tests.helpers.configs import compose_config
from tests.integration.test_train_cli import student_state, train

FAST = ("loss=mcad", "final_table=false", "seed=5")


def psnr(run_dir) -> float:
    return json.loads((run_dir / "results.json").read_text())["val"]["val/SampleVal/psnr_y"]


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


def test_channels_last_with_a_bf16_teacher_trains_like_the_default(tmp_path):
    train(tmp_path / "default", *FAST)
    fast = tmp_path / "fast"
    train(fast, *FAST, "perf.channels_last=true", "perf.teacher_autocast=bf16")
    default_state = student_state(tmp_path / "default" / "checkpoints" / "last.ckpt")
    fast_state = student_state(fast / "checkpoints" / "last.ckpt")
    assert fast_state.keys() == default_state.keys()
    assert abs(psnr(fast) - psnr(tmp_path / "default")) < 0.1
    check_exported_student_loads(fast, tmp_path)


@pytest.mark.slow
def test_compiled_run_writes_checkpoints_without_the_compile_wrapper(tmp_path):
    train(tmp_path / "default", *FAST)
    compiled = tmp_path / "compiled"
    train(compiled, *FAST, "perf.compile=true", "perf.compile_backend=aot_eager")
    state = student_state(compiled / "checkpoints" / "last.ckpt")
    assert not any("_orig_mod" in key for key in state)
    assert state.keys() == student_state(tmp_path / "default" / "checkpoints" / "last.ckpt").keys()
    assert abs(psnr(compiled) - psnr(tmp_path / "default")) < 0.05
    check_exported_student_loads(compiled, tmp_path)
