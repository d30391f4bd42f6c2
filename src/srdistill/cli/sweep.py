"""Sweeps (``train.py -m``): every job runs, the failed ones are listed at the end.

A job that fails (a bad option, a diverged run, any exception) ends with its own output as a
single run's would (one ``error:`` line, or a traceback) and the sweep goes on. Its failure is
recorded in ``<hydra.sweep.dir>/.failed_jobs/<job number>.json``: a file, because with
``cluster=slurm`` each job runs in a process of its own on another machine. When the sweep ends,
``SweepReport`` (conf/train.yaml ``hydra.callbacks``) names every failed job with its overrides
and reason, one line each, and the sweep exits 2 when every failure is a user error (as a single
run would), 1 when any job crashed.

Job folders are named by the overrides (``hydra.sweep.subdir``), so a ``..`` in a value would
put a job's folder, written before the job starts, outside the sweep folder: refused up front.
"""

from __future__ import annotations

import json
import shutil
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from srdistill.outputs import write_json

USER_ERROR_EXIT, CRASH_EXIT = 2, 1
RECORDS = ".failed_jobs"


@dataclass(frozen=True)
class JobFailure:
    """What a failed job returns to Hydra instead of raising, so the launcher runs the rest."""

    reason: str
    user_error: bool


def in_sweep() -> bool:
    """This code runs as a job of a ``-m`` sweep."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_job(task, cfg: DictConfig):
    """``task(cfg)``; a failure prints what a single run prints and is returned, not raised
    (a SystemExit, e.g. the SIGTERM handler's, still ends the sweep: the process was stopped)."""
    from srdistill.cli.common import user_error, user_message  # torch: only inside a job

    try:
        return task(cfg)
    except Exception as err:  # noqa: BLE001 - any failure of one job must not end the sweep
        found = user_error(err)
        if found is None:
            traceback.print_exc()
            return JobFailure(f"{type(err).__name__}: {user_message(err)}", user_error=False)
        reason = user_message(found)
        print(f"error: {reason}", file=sys.stderr)
        return JobFailure(reason, user_error=True)


def _exit(*lines: str, code: int = USER_ERROR_EXIT) -> NoReturn:
    # Hydra turns a callback's exception into a warning; a SystemExit ends the command
    print("\n".join(lines), file=sys.stderr)
    sys.exit(code)


def _folder_escapes(line: str) -> bool:
    return ".." in line.split("/")


def check_job_folders(config: DictConfig) -> None:
    """Refuse an override whose value puts a ``..`` component into a job folder's path (the
    folder would move up, out of hydra.sweep.dir); before the sweep writes anything. Keys
    excluded from the folder name (data.root, ...) may hold one; a '/' only nests folders."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    excluded = set(config.hydra.job.config.override_dirname.exclude_keys)
    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    for override in overrides:
        if override.key_or_group in excluded or override.value() is None:
            continue
        key = override.get_key_element()
        if override.is_discrete_sweep():
            values = list(override.sweep_string_iterator())
        elif override.is_sweep_override():  # an interval for an optimising sweeper: numbers
            continue
        else:
            values = [override.get_value_element_as_str()]
        for value in values:
            if _folder_escapes(f"{key}={value}"):
                _exit(
                    f"error: {key}={value}: a sweep names each job's folder by its overrides, "
                    "and the '..' in this value would move the folder up, out of its place in "
                    f"hydra.sweep.dir; give {key} a value without '..'"
                )


def _records(config: DictConfig) -> Path:
    return Path(str(config.hydra.sweep.dir)) / RECORDS


def summary_line(record: dict) -> str:
    overrides = " ".join(record["overrides"])
    return f"error: sweep job #{record['job']} failed ({overrides}): {record['reason']}"


class SweepReport(Callback):
    """Hydra callback: checks the job folders' names, records failed jobs, reports them."""

    def __init__(self) -> None:
        # the failures of jobs run in this process (the basic launcher), kept in case a record
        # file cannot be written: Hydra turns a callback's error into a warning
        self.failures: dict[int, dict] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_job_folders(config)
        shutil.rmtree(_records(config), ignore_errors=True)  # a previous sweep's, same folder

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        # a job that raised is FAILED (not ours: run_job returns failures); read only COMPLETED
        # ones, since reading a FAILED job's return_value raises its exception
        if job_return.status != JobStatus.COMPLETED:
            return
        failure = job_return.return_value
        if not isinstance(failure, JobFailure):
            return
        job = int(config.hydra.job.num)
        record = {
            "job": job,
            "overrides": list(job_return.overrides or []),
            "reason": failure.reason,
            "user_error": failure.user_error,
        }
        self.failures[job] = record
        write_json(_records(config) / f"{job}.json", record, "hydra.sweep.dir")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        files = [p for p in _records(config).glob("*.json") if p.stem.isdigit()]
        found = {int(p.stem): json.loads(p.read_text()) for p in files}
        records = [record for _, record in sorted({**found, **self.failures}.items())]
        if records:
            user_errors = all(r["user_error"] for r in records)
            _exit(
                *(summary_line(r) for r in records),
                code=USER_ERROR_EXIT if user_errors else CRASH_EXIT,
            )
