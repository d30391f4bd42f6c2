"""Sweeps: the SLURM launcher's config (cluster=slurm) and real 2-job sweeps run locally."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from hydra.utils import instantiate

from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.configs import compose_config
from tests.helpers.shared import REPO_ROOT

needs_submitit = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="hydra-submitit-launcher is not installed (pip install 'srdistill[cluster]')",
)
SLURM_OPTIONS = [
    "cluster=slurm",
    "cluster.partition=gpu",
    "cluster.nodes=2",
    "cluster.gpus_per_node=4",
    "cluster.time_min=90",
    "cluster.account=lab",
]


@needs_submitit
def test_slurm_launcher_config_composes_one_task_per_gpu():
    cfg = compose_config("train", SLURM_OPTIONS, hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.account, launcher.timeout_min) == ("gpu", "lab", 90)
    assert (launcher.nodes, launcher.gpus_per_node) == (2, 4)
    # Lightning's SLURM environment needs tasks per node == devices per node
    assert launcher.tasks_per_node == cfg.trainer.devices == 4
    assert cfg.trainer.num_nodes == 2 and cfg.trainer.accelerator == "gpu"
    assert launcher.submitit_folder.endswith("/.submitit/%j")


@needs_submitit
def test_slurm_launcher_builds_from_the_config():
    cfg = compose_config("train", SLURM_OPTIONS, hydra=True)
    launcher = instantiate(cfg.hydra.launcher)
    # the executor's parameters as submitted to sbatch
    assert launcher.params["partition"] == "gpu"
    assert launcher.params["tasks_per_node"] == 4 and launcher.params["nodes"] == 2


@needs_submitit
def test_slurm_sweep_without_partition_is_one_line():
    proc = run_script("train.py", "-m", "cluster=slurm", "experiment=smoke")
    assert_one_line_error(proc, "cluster.partition")


@needs_submitit
def test_a_slurm_sweep_off_a_cluster_is_one_line(tmp_path):
    if shutil.which("srun"):
        pytest.skip("this machine has srun: the sweep would really be submitted")
    proc = run_script(
        "train.py",
        "-m",
        "cluster=slurm",
        "cluster.partition=gpu",
        "experiment=smoke",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert_one_line_error(proc, "srun", "login node")


def test_unknown_cluster_is_one_line():
    proc = run_script("train.py", "cluster=pbs", "experiment=smoke")
    assert_one_line_error(proc, "cluster/pbs")


def sweep(launcher_overrides: list[str], sweep_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "train.py", "-m", "experiment=smoke", "seed=0,1"]
    command += [f"hydra.sweep.dir={sweep_dir}", *launcher_overrides]
    proc = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def assert_two_seeded_runs(sweep_dir) -> None:
    results = [json.loads((sweep_dir / f"seed={s}" / "results.json").read_text()) for s in (0, 1)]
    assert [r["tags"]["seed"] for r in results] == [0, 1]
    weights = [
        torch.load(sweep_dir / f"seed={s}" / "checkpoints" / "last.ckpt", weights_only=True)
        for s in (0, 1)
    ]
    first = next(k for k in weights[0]["state_dict"] if k.startswith("student."))
    # another seed is another initialisation and data order, not a copy of the first job
    assert not torch.equal(weights[0]["state_dict"][first], weights[1]["state_dict"][first])


@pytest.mark.slow
def test_two_job_sweep_with_the_basic_launcher(tmp_path):
    sweep([], tmp_path)
    assert_two_seeded_runs(tmp_path)


@pytest.mark.slow
@needs_submitit
def test_two_job_sweep_through_submitit_locally(tmp_path):
    """The path a SLURM sweep takes (the job pickled, run by submitit), on this machine."""
    sweep(["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"], tmp_path)
    assert_two_seeded_runs(tmp_path)
    assert list((tmp_path / ".submitit").rglob("*_log.out"))


def tiny_sweep(sweep_dir, *overrides: str):
    """A local sweep of one-step smoke runs without validation, in this process."""
    args = ["-m", "experiment=smoke", "trainer.max_steps=1", "+trainer.limit_val_batches=0"]
    args += ["final_table=false"]
    args += [f"hydra.sweep.dir={sweep_dir}", *overrides]
    return run_script("train.py", *args, env={"WANDB_MODE": "offline"})


def test_a_failed_job_does_not_stop_the_sweep_and_is_named_at_the_end(tmp_path):
    # job #0 fails its checks (the image contrast of mcad needs 2 images), job #1 trains
    proc = tiny_sweep(tmp_path, "loss=mcad,kd", "batch_size=1")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(list(tmp_path.glob("*loss=kd*/results.json"))) == 1
    assert not list(tmp_path.glob("*loss=mcad*/results.json"))
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: sweep job #0 failed (")
    assert "loss=mcad batch_size=1" in last and "needs at least 2 images" in last
    # the job's own line, as a single run prints it, came when the job failed
    assert proc.stderr.count("error: batch_size=1: loss=mcad needs") == 1


def test_a_dotdot_in_a_sweep_value_is_refused_before_any_job(tmp_path):
    # the job folder is named by the overrides: x/../../.. would climb out of the sweep folder
    proc = tiny_sweep(tmp_path / "sweep", "tags.method=x/../../../escaped", "seed=0,1")
    assert_one_line_error(proc, "tags.method=x/../../../escaped", "hydra.sweep.dir")
    assert list(tmp_path.iterdir()) == []


def test_a_job_folder_name_too_long_is_refused_before_any_job(tmp_path):
    # job #0's folder (tags.table=a) would be made and the job run; job #1's name, 300 bytes
    # longer, ended the launcher with "File name too long" and no summary
    proc = tiny_sweep(tmp_path / "sweep", f"tags.table=a,{'y' * 300}", "scale=0")
    assert_one_line_error(proc, "tags.table", "255")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@needs_submitit
def test_a_failed_job_is_named_at_the_end_through_submitit(tmp_path):
    """Each job runs in a process of its own there: its failure reaches the summary by file."""
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "train.py", "-m", "experiment=smoke", "trainer.max_steps=1"]
    command += ["+trainer.limit_val_batches=0", "final_table=false", "loss=mcad,kd"]
    command += ["batch_size=1", f"hydra.sweep.dir={tmp_path}", "hydra/launcher=submitit_local"]
    command += ["hydra.launcher.timeout_min=10"]
    proc = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(list(tmp_path.glob("*loss=kd*/results.json"))) == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: sweep job #0 failed (") and "loss=mcad" in last
