"""last.ckpt is the latest state whatever happens: no new best, SIGKILL, SIGTERM, divergence."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.cli import run_script
from tests.helpers.shared import REPO_ROOT
from tests.helpers.training import student_state, train


def saved_step(checkpoint: Path) -> int:
    return torch.load(checkpoint, weights_only=True, mmap=True)["global_step"]


def start_train(run_dir: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.Popen(
        [sys.executable, "train.py", "experiment=smoke", f"hydra.run.dir={run_dir}", *overrides],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_last_is_the_final_step_when_later_validations_are_no_better(tmp_path):
    # lr=0: the weights never move, so validations after the first cannot be a new best
    train(
        tmp_path,
        "loss=scratch",
        "optimizer.lr=0",
        "trainer.max_steps=6",
        "trainer.val_check_interval=2",
        "callbacks.last.every_n_steps=4",  # step 6 is only written by the end-of-run save
    )
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-step2.ckpt", "last.ckpt"]
    assert saved_step(checkpoints / "last.ckpt") == 6
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 6


@pytest.mark.slow
def test_resume_after_sigkill_reproduces_the_uninterrupted_run(tmp_path):
    common = ["loss=mcad", "trainer.deterministic=true", "seed=3", "trainer.val_check_interval=2"]
    train(tmp_path / "whole", *common, "trainer.max_steps=6")
    # the same run, but long, killed without warning as soon as a mid-run last.ckpt exists
    proc = start_train(tmp_path / "killed", *common, "trainer.max_steps=1000")
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    wait_for(last, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert 0 < saved_step(last) < 6
    train(tmp_path / "resumed", *common, "trainer.max_steps=6", f"ckpt_path={last}")
    whole = student_state(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    resumed = student_state(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert whole.keys() == resumed.keys()
    assert any(not torch.equal(student_state(last)[k], whole[k]) for k in whole)
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


@pytest.mark.slow
def test_sigterm_saves_last_exits_non_zero_and_resumes(tmp_path):
    common = ["loss=scratch", "trainer.val_check_interval=2"]
    proc = start_train(tmp_path / "run", *common, "trainer.max_steps=2000")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    wait_for(last, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    message = stderr.strip().splitlines()[-1]
    match = re.fullmatch(
        r"error: terminated by SIGTERM at step (\d+); resume with ckpt_path=(.+)", message
    )
    assert match and Path(match[2]) == last, message
    assert [line for line in stderr.splitlines() if line.startswith("error:")] == [message]
    step = int(match[1])
    assert saved_step(last) == step > 0
    assert not (tmp_path / "run" / "results.json").exists()
    assert not (tmp_path / "run" / "checkpoints" / "on_exception.ckpt").exists()
    train(tmp_path / "resumed", *common, f"trainer.max_steps={step + 2}", f"ckpt_path={last}")
    results = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert results["steps"] == step + 2


def test_divergence_stops_with_one_line_and_never_saves_non_finite_weights(tmp_path):
    proc = run_script(
        "train.py",
        "experiment=smoke",
        "loss=scratch",
        "optimizer.lr=1e10",
        "trainer.max_steps=20",
        "module.max_nonfinite_steps=3",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    last_line = proc.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: training diverged: 3 generator steps in a row"), last_line
    assert "rec" in last_line and "optimizer.lr" in last_line
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [last_line]
    for checkpoint in (tmp_path / "checkpoints").glob("*.ckpt"):
        state = torch.load(checkpoint, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    results = tmp_path / "results.json"
    assert not results.exists() or json.loads(results.read_text(), parse_constant=reject)


def reject(constant: str):
    raise ValueError(f"{constant} is not strict JSON")
