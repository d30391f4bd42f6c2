"""srdistill.cli.sweep: a failed sweep job is returned, recorded and named at the end; a value
that would climb out of the sweep folder is refused before any job."""

from __future__ import annotations

import json

import pytest
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from srdistill.cli.sweep import RECORDS, JobFailure, SweepReport, check_job_folders, run_job
from srdistill.models.checkpoint import CheckpointError


def failing(err: BaseException):
    def task(cfg):
        raise err

    return task


def sweep_config(sweep_dir, job: int = 0, task=(), exclude=("data.root",)):
    return OmegaConf.create(
        {
            "hydra": {
                "sweep": {"dir": str(sweep_dir)},
                "job": {"num": job, "config": {"override_dirname": {"exclude_keys": exclude}}},
                "overrides": {"task": list(task)},
            }
        }
    )


def job_return(value, overrides) -> JobReturn:
    ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
    ret.return_value = value
    return ret


@pytest.mark.parametrize(
    "err",
    [
        ValueError("batch_size=1: too small"),
        CheckpointError("ckpt=x.pth: not a checkpoint"),
        OSError("cannot write"),
    ],
)
def test_a_user_error_prints_one_line_and_is_returned(err, capsys):
    failure = run_job(failing(err), None)
    assert failure == JobFailure(str(err), user_error=True)
    assert capsys.readouterr().err == f"error: {err}\n"


def test_a_user_error_inside_a_config_target_is_reported_as_its_cause(capsys):
    err = InstantiationException("Error in call to target 'x'")
    err.__cause__ = ValueError("lora.rank=0: must be positive")
    failure = run_job(failing(err), None)
    assert failure == JobFailure("lora.rank=0: must be positive", user_error=True)
    assert capsys.readouterr().err == "error: lora.rank=0: must be positive\n"


def test_a_crash_prints_its_traceback_and_is_returned(capsys):
    failure = run_job(failing(RuntimeError("CUDA error: an illegal memory access")), None)
    assert failure == JobFailure("RuntimeError: CUDA error: an illegal memory access", False)
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_a_successful_job_returns_its_value():
    assert run_job(lambda cfg: cfg * 2, 21.0) == 42.0


def test_a_stop_request_still_ends_the_sweep():
    # the SIGTERM handler exits: the process was asked to stop, not one job
    with pytest.raises(SystemExit):
        run_job(failing(SystemExit(143)), None)


def run_sweep(tmp_path, returns: list) -> SweepReport:
    report = SweepReport()
    report.on_multirun_start(sweep_config(tmp_path))
    for job, value in enumerate(returns):
        overrides = [f"seed={job}", "experiment=smoke"]
        report.on_job_end(sweep_config(tmp_path, job), job_return(value, overrides))
    return report


def test_a_sweep_of_successes_ends_quietly(tmp_path, capsys):
    run_sweep(tmp_path, [30.1, 30.2]).on_multirun_end(sweep_config(tmp_path))
    assert capsys.readouterr().err == ""


def test_failed_jobs_are_named_one_line_each_and_user_errors_exit_2(tmp_path, capsys):
    failures = [JobFailure("batch_size=1: too small", True), 30.0, JobFailure("diverged", True)]
    report = run_sweep(tmp_path, failures)
    with pytest.raises(SystemExit) as exit_:
        report.on_multirun_end(sweep_config(tmp_path))
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: sweep job #0 failed (seed=0 experiment=smoke): batch_size=1: too small",
        "error: sweep job #2 failed (seed=2 experiment=smoke): diverged",
    ]


def test_a_crashed_job_makes_the_sweep_exit_1(tmp_path):
    report = run_sweep(tmp_path, [JobFailure("too small", True), JobFailure("OOM", False)])
    with pytest.raises(SystemExit) as exit_:
        report.on_multirun_end(sweep_config(tmp_path))
    assert exit_.value.code == 1


def test_the_failure_record_is_written_where_every_launcher_reaches_it(tmp_path):
    # with cluster=slurm the job's callback runs on another machine: the record is a file
    run_sweep(tmp_path, [JobFailure("too small", True)])
    record = json.loads((tmp_path / RECORDS / "0.json").read_text())
    assert record == {
        "job": 0,
        "overrides": ["seed=0", "experiment=smoke"],
        "reason": "too small",
        "user_error": True,
    }


def test_a_previous_sweep_s_failures_in_the_same_folder_are_forgotten(tmp_path, capsys):
    run_sweep(tmp_path, [JobFailure("too small", True)])
    run_sweep(tmp_path, [30.0]).on_multirun_end(sweep_config(tmp_path))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "override",
    ["tags.method=x/../../../escaped", "tags.table=a,b/..", "+run_name=a/..", "seed=x/.."],
)
def test_a_value_climbing_out_of_the_sweep_folder_is_refused(tmp_path, override, capsys):
    with pytest.raises(SystemExit) as exit_:
        check_job_folders(sweep_config(tmp_path, task=["experiment=smoke", override]))
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert override.split("=")[0] in lines[0] and "hydra.sweep.dir" in lines[0]


@pytest.mark.parametrize(
    "override",
    [
        "data.root=../data/DIV2K",  # excluded from the folder name
        "teacher=zoo/edsr_x4",  # a '/' nests a folder inside the sweep folder
        "tags.table=../up",  # the folder is 'tags.table=..'/'up', inside
        "tags.table=a..b",
        "seed=0,1,2",
    ],
)
def test_values_that_stay_inside_the_sweep_folder_pass(tmp_path, override):
    check_job_folders(sweep_config(tmp_path, task=["experiment=smoke", override]))


def test_a_failure_whose_record_cannot_be_written_is_still_named(tmp_path, capsys):
    (tmp_path / RECORDS).write_text("a file where the records folder goes")
    report = SweepReport()
    with pytest.raises(OSError):  # Hydra turns this into a warning and runs on
        report.on_job_end(sweep_config(tmp_path), job_return(JobFailure("bad", True), ["a=1"]))
    with pytest.raises(SystemExit):
        report.on_multirun_end(sweep_config(tmp_path / "elsewhere"))
    assert capsys.readouterr().err == "error: sweep job #0 failed (a=1): bad\n"
