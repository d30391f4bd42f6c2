"""srdistill.cli.sweep: a failed sweep job is returned, recorded and named at the end, by its own
sweep only; a value that would climb out of the sweep folder or make a job folder's name too long
is refused before any job."""

from __future__ import annotations

import json

import pytest
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from srdistill.cli.sweep import (
    RECORDS,
    SWEEP_ID_ENV,
    JobFailure,
    SweepReport,
    check_job_folders,
    run_job,
)
from srdistill.models.checkpoint import CheckpointError


@pytest.fixture(autouse=True)
def _sweep_id_restored(monkeypatch):
    # on_multirun_start sets the id in this process's environment; monkeypatch puts it back
    monkeypatch.setenv(SWEEP_ID_ENV, "")
    monkeypatch.delenv(SWEEP_ID_ENV)


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


def test_a_job_in_another_process_records_its_failure_where_the_sweep_reads_it(tmp_path, capsys):
    # with submitit (locally or on SLURM) a job's callback is another instance in another
    # process, which learns the sweep's id from the environment the launcher passes on
    launcher = SweepReport()
    launcher.on_multirun_start(sweep_config(tmp_path))
    job = SweepReport()
    job.on_job_end(sweep_config(tmp_path, 3), job_return(JobFailure("too small", True), ["a=1"]))
    record = json.loads((tmp_path / RECORDS / launcher.sweep_id / "3.json").read_text())
    assert record == {"job": 3, "overrides": ["a=1"], "reason": "too small", "user_error": True}
    with pytest.raises(SystemExit) as exit_:
        launcher.on_multirun_end(sweep_config(tmp_path))
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: sweep job #3 failed (a=1): too small\n"


def test_a_previous_sweep_s_failures_in_the_same_folder_are_forgotten(tmp_path, capsys):
    run_sweep(tmp_path, [JobFailure("too small", True)])
    run_sweep(tmp_path, [30.0]).on_multirun_end(sweep_config(tmp_path))
    assert capsys.readouterr().err == ""


def test_two_sweeps_sharing_a_folder_list_only_their_own_failures(tmp_path, monkeypatch, capsys):
    # two sweeps started in the same second share the default multirun/<time> folder
    first, second = SweepReport(), SweepReport()
    first.on_multirun_start(sweep_config(tmp_path))
    second.on_multirun_start(sweep_config(tmp_path))
    monkeypatch.setenv(SWEEP_ID_ENV, first.sweep_id)  # the first sweep's job, in its process
    SweepReport().on_job_end(
        sweep_config(tmp_path, 0), job_return(JobFailure("too small", True), ["seed=0"])
    )
    monkeypatch.setenv(SWEEP_ID_ENV, second.sweep_id)
    second.on_multirun_end(sweep_config(tmp_path))  # its only job succeeded
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit) as exit_:
        first.on_multirun_end(sweep_config(tmp_path))
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: sweep job #0 failed (seed=0): too small\n"


def test_a_linked_records_folder_is_refused_before_any_job(tmp_path, capsys):
    users = tmp_path / "users_folder"
    users.mkdir()
    (users / "7.json").write_text('{"note": "my data"}')
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / RECORDS).symlink_to(users)
    with pytest.raises(SystemExit) as exit_:
        SweepReport().on_multirun_start(sweep_config(sweep_dir))
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "symbolic link" in lines[0]
    assert [p.name for p in users.iterdir()] == ["7.json"]


@pytest.mark.parametrize(
    "content",
    [
        '{"note": "my data"}',
        '{"job": 7, "overrides": "a=1", "reason": "x", "user_error": true}',
        '{"job": 7, "overrides": ["a=1"], "reason": "x", "user_error": "no"}',
        '{"job": 6, "overrides": ["a=1"], "reason": "x", "user_error": true}',
        "[1, 2]",
        "not json",
    ],
)
def test_a_malformed_record_is_one_warning_and_the_sweep_does_not_exit_0(tmp_path, content, capsys):
    report = SweepReport()
    report.on_multirun_start(sweep_config(tmp_path))
    folder = tmp_path / RECORDS / report.sweep_id
    folder.mkdir(parents=True)
    (folder / "7.json").write_text(content)
    with pytest.raises(SystemExit) as exit_:
        report.on_multirun_end(sweep_config(tmp_path))
    assert exit_.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("warning: ignoring ") and "7.json" in lines[0]
    assert lines[1].startswith("error: sweep: 1 failed job record(s) could not be read")


def test_a_failure_is_still_reported_when_the_records_cannot_be_read(tmp_path, capsys):
    report = run_sweep(tmp_path, [JobFailure("too small", True)])
    records = tmp_path / RECORDS / report.sweep_id
    for path in records.iterdir():
        path.unlink()
    records.rmdir()
    records.write_text("a file where this sweep's records go")
    with pytest.raises(SystemExit) as exit_:
        report.on_multirun_end(sweep_config(tmp_path))
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "error: sweep job #0 failed (seed=0 experiment=smoke): too small" in err


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


def test_a_failure_whose_record_cannot_be_written_is_still_named(tmp_path, monkeypatch, capsys):
    (tmp_path / RECORDS).write_text("a file where the records folder goes")
    report = SweepReport()
    monkeypatch.setenv(SWEEP_ID_ENV, "0" * 32)
    with pytest.raises(OSError):  # Hydra turns this into a warning and runs on
        report.on_job_end(sweep_config(tmp_path), job_return(JobFailure("bad", True), ["a=1"]))
    with pytest.raises(SystemExit):
        report.on_multirun_end(sweep_config(tmp_path / "elsewhere"))
    assert capsys.readouterr().err == "error: sweep job #0 failed (a=1): bad\n"


LONG = "y" * 300


@pytest.mark.parametrize(
    "override,option",
    [
        (f"tags.table=a,{LONG}", "tags.table"),  # job #0's folder fits, job #1's does not
        (f"+run_name='{'é' * 130}'", "+run_name"),  # 260 bytes in UTF-8
    ],
)
def test_a_job_folder_name_over_255_bytes_is_refused_before_any_job(
    tmp_path, override, option, capsys
):
    with pytest.raises(SystemExit) as exit_:
        check_job_folders(sweep_config(tmp_path, task=["experiment=smoke", override]))
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}: ") and "255" in lines[0]


def test_the_folder_name_counts_every_key_s_longest_value(tmp_path, capsys):
    # each key alone fits; the longest values of both together make one name over 255 bytes
    task = ["seed=0,1", f"tags.table=a,{'t' * 120}", f"tags.method={'m' * 120},b"]
    with pytest.raises(SystemExit):
        check_job_folders(sweep_config(tmp_path, task=task))
    assert "255" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override",
    [
        f"data.root={LONG}",  # excluded from the folder name
        f"tags.table={'t' * 200}/{'u' * 200}",  # a '/' starts another folder: two names
        f"tags.table={'t' * 200}",
    ],
)
def test_job_folder_names_within_255_bytes_pass(tmp_path, override):
    check_job_folders(sweep_config(tmp_path, task=["experiment=smoke", override]))
