"""scripts/mcad_mini_tab3.sh and scripts/balance_target_pilot.sh: the commands they run, read
with PYTHON=echo (nothing trains), and the pilot's choice read from hand-made results."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.shared import REPO_ROOT

pytestmark = pytest.mark.slow  # each test starts bash


def run_script(name, tmp_path, args=(), **env):
    warm = tmp_path / "outputs/mcad_warm_start/warm_start"
    warm.mkdir(parents=True, exist_ok=True)
    (warm / "warm_start.pth").touch()
    env = {**os.environ, "PYTHON": "echo", "REPORT": "true", **env}
    script = REPO_ROOT / "scripts" / name
    done = subprocess.run(
        ["bash", str(script), *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def arm_commands(lines):
    """{(loss, seed): the overrides of that arm's train.py command}."""
    arms = {}
    for line in lines:
        words = line.split()
        if words and words[0] == "train.py":
            opts = dict(w.split("=", 1) for w in words[1:])
            arms[opts["loss"], opts["seed"]] = opts
    return arms


def test_every_pending_arm_runs_once_with_its_options_in_parallel(tmp_path):
    done = tmp_path / "o/kd/seed1"
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    lines = run_script(
        "mcad_mini_tab3.sh",
        tmp_path,
        ["o"],
        METHODS="scratch kd csd dukd",
        SEEDS="0 1",
        JOBS="2",
        BALANCE="0.3",
        EXTRA_ARGS="val.sets=[Set14]",
    )
    arms = arm_commands(lines)
    assert len(lines) == len(arms) == 7  # 4 methods x 2 seeds, less the finished kd seed 1
    assert ("kd", "1") not in arms
    assert all(
        a["val.sets"] == "[Set14]" and a["module.grad_share_every"] == "20" for a in arms.values()
    )
    assert all(a["hydra.run.dir"] == f"o/{m}/seed{s}" for (m, s), a in arms.items())
    # scratch has nothing to balance; DUKD's zoom terms train in their own optimizer step
    assert "module.balance.target" not in arms["scratch", "0"]
    assert arms["kd", "0"]["module.balance.target"] == "0.3"
    assert arms["dukd", "1"]["module.balance.target"] == "{resp:0.3}"
    assert arms["csd", "0"]["loss.terms.cont.loss.num_negatives"] == "8"
    assert "loss.terms.cont.loss.num_negatives" not in arms["kd", "0"]


def write_result(path, set14):
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"val": {"val/Set14/psnr_y": set14}}))


def test_the_pilot_reads_set14_only_and_picks_the_highest_mean_gain(tmp_path):
    pilot = tmp_path / "p"
    write_result(pilot / "reference/scratch/seed0", 27.0)
    for target, gains in {"0.1": (0.02, -0.01), "1": (0.05, 0.01)}.items():
        for method, gain in zip(("kd", "fakd"), gains, strict=True):
            write_result(pilot / f"target{target}/{method}/seed0", 27.0 + gain)
    # every arm has its results, so nothing trains: PYTHON runs only the selection
    lines = run_script(
        "balance_target_pilot.sh",
        tmp_path,
        ["p"],
        TARGETS="0.1 1",
        METHODS="kd fakd",
        PYTHON=sys.executable,
    )
    assert lines[-1] == "chosen target: 1"
    assert any(line.split()[-1] == "+0.005" for line in lines if line.startswith("0.1"))
