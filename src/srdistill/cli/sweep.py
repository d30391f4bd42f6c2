"""Sweeps (``train.py -m``): every job runs, the failed ones are listed at the end.

A job that fails (a bad option, a diverged run, any exception) ends with its own output as a
single run's would (one ``error:`` line, or a traceback) and the sweep goes on. Its failure is
recorded in ``<hydra.sweep.dir>/.failed_jobs/<sweep id>/<job number>.json``: a file, because with
``cluster=slurm`` each job runs in a process of its own on another machine, and in a folder of
this sweep's own, because two sweeps may share a sweep folder (run at once, or the default
``multirun/<time>`` of two sweeps started in the same second). The id, new for each sweep, reaches
the jobs in the environment (``SRDISTILL_SWEEP_ID``): the basic launcher runs them in this
process, submitit's local and SLURM executors start them with the launcher's environment.
When the sweep ends, ``SweepReport`` (conf/train.yaml ``hydra.callbacks``) names every failed job
with its overrides and reason, one line each, and the sweep exits 2 when every failure is a user
error (as a single run would), 1 when any job crashed or a record could not be read.

Job folders are named by the overrides (``hydra.sweep.subdir``), so a ``..`` in a value would
put a job's folder, written before the job starts, outside the sweep folder, and a long value
would make a folder name the file system refuses after the jobs before it ran: both are refused
up front.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from srdistill.outputs import write_json

USER_ERROR_EXIT, CRASH_EXIT = 2, 1
RECORDS = ".failed_jobs"
SWEEP_ID_ENV = "SRDISTILL_SWEEP_ID"
SWEEP_ID = re.compile(r"[0-9a-f]{32}")
# the longest file name Linux, macOS and Windows file systems take (ext4, APFS, NTFS: 255)
MAX_NAME_BYTES = 255
RECORD_TYPES = {"job": int, "overrides": list, "reason": str, "user_error": bool}


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


def _job_lines(config: DictConfig) -> dict[str, list[str]]:
    """The ``key=value`` lines each override can give a job's folder name, by key (what Hydra's
    sweeper hands each job; keys excluded from the folder name left out)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    excluded = set(config.hydra.job.config.override_dirname.exclude_keys)
    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    lines: dict[str, list[str]] = {}
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
        lines[key] = [f"{key}={value}" for value in values]
    return lines


def _names_jobs_by_overrides(config: DictConfig) -> bool:
    sweep = OmegaConf.to_container(config.hydra.sweep, resolve=False)
    return "override_dirname" in str(sweep.get("subdir", "${hydra:job.override_dirname}"))


def _longest_component(lines: list[str], naming: DictConfig) -> int:
    # Hydra's get_overrides_dirname: sorted lines joined by item_sep, every '=' made kv_sep
    name = naming.get("item_sep", ",").join(sorted(lines)).replace("=", naming.get("kv_sep", "="))
    return max(len(part.encode()) for part in name.split("/"))


def _check_name_length(lines: dict[str, list[str]], config: DictConfig) -> None:
    """Refuse overrides whose longest job folder name is over what a file system takes (the
    launcher would fail at that job, after the jobs before it ran)."""
    if not lines or not _names_jobs_by_overrides(config):
        return
    naming = config.hydra.job.config.override_dirname
    longest = {
        key: max(options, key=lambda line: len(line.encode())) for key, options in lines.items()
    }
    size = _longest_component(list(longest.values()), naming)
    if size > MAX_NAME_BYTES:
        key = max(longest, key=lambda k: len(longest[k].encode()))
        value = longest[key][len(key) + 1 :]
        shown = f"{value[:40]}..." if len(value) > 43 else value
        _exit(
            f"error: {key}: a sweep names each job's folder by its overrides, and with the value "
            f"'{shown}' the folder name would be {size} bytes, over the {MAX_NAME_BYTES} a file "
            f"name may have; shorten {key}'s value"
        )


def check_job_folders(config: DictConfig) -> None:
    """Refuse, before the sweep writes anything, an override whose value puts a ``..`` component
    into a job folder's path (the folder would move up, out of hydra.sweep.dir; keys excluded
    from the folder name, data.root ..., may hold one, a '/' only nests folders), and overrides
    that make a job folder's name too long for the file system."""
    lines = _job_lines(config)
    for line in (line for options in lines.values() for line in options):
        if _folder_escapes(line):
            key = line.split("=", 1)[0]
            _exit(
                f"error: {line}: a sweep names each job's folder by its overrides, and the '..' "
                f"in this value would move the folder up, out of its place in hydra.sweep.dir; "
                f"give {key} a value without '..'"
            )
    _check_name_length(lines, config)


def _records_root(config: DictConfig) -> Path:
    return Path(str(config.hydra.sweep.dir)) / RECORDS


def check_records_folder(config: DictConfig) -> None:
    """Refuse a ``.failed_jobs`` that is a link or not a folder: the records would go wherever
    it points (a user's own folder) and be read back from there."""
    root = _records_root(config)
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        what = "a symbolic link" if root.is_symlink() else "not a folder"
        _exit(
            f"error: {root} is {what}: a sweep keeps its failed jobs' records in this folder of "
            "hydra.sweep.dir; remove it, or give another hydra.sweep.dir"
        )


def _records(config: DictConfig, sweep_id: str) -> Path:
    root = _records_root(config)
    if root.is_symlink():  # made since the sweep started: never write through it
        raise OSError(f"{root} is a symbolic link: the failed job's record is not written there")
    return root / sweep_id


def _this_sweep_id() -> str | None:
    """The id the sweep's callback set, in the job's environment; None outside a sweep."""
    found = os.environ.get(SWEEP_ID_ENV, "")
    return found if SWEEP_ID.fullmatch(found) else None


def summary_line(record: dict) -> str:
    overrides = " ".join(record["overrides"])
    return f"error: sweep job #{record['job']} failed ({overrides}): {record['reason']}"


def parse_record(path: Path) -> dict:
    """A failed job's record as ``on_job_end`` writes it; ValueError for anything else."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(str(err).splitlines()[0]) from err
    if not isinstance(record, dict) or set(record) != set(RECORD_TYPES):
        raise ValueError(f"expected the keys {', '.join(RECORD_TYPES)}")
    for key, kind in RECORD_TYPES.items():
        if type(record[key]) is not kind:  # not isinstance: a bool is an int
            raise ValueError(f"{key} is not a {kind.__name__}")
    if not all(isinstance(o, str) for o in record["overrides"]):
        raise ValueError("overrides holds a non-string")
    if str(record["job"]) != path.stem:
        raise ValueError(f"job {record['job']} in the file of job {path.stem}")
    return record


def read_records(folder: Path) -> tuple[dict[int, dict], int]:
    """The records of the sweep's failed jobs, and how many files there were unreadable (each
    named in one warning line): only failed jobs write there, so each is a failure too."""
    if not folder.exists() and not folder.is_symlink():
        return {}, 0
    if folder.is_symlink() or not folder.is_dir():
        raise OSError(f"{folder} is not a folder")
    records, unreadable = {}, 0
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):  # a record being written (outputs.write_atomic)
            continue
        try:
            record = parse_record(path) if path.suffix == ".json" else None
            if record is None:
                raise ValueError("not a .json file")
        except ValueError as err:
            print(f"warning: ignoring {path}: not a failed job's record ({err})", file=sys.stderr)
            unreadable += 1
            continue
        records[record["job"]] = record
    return records, unreadable


class SweepReport(Callback):
    """Hydra callback: checks the job folders' names, records failed jobs, reports them."""

    def __init__(self) -> None:
        # the failures of jobs run in this process (the basic launcher), kept in case a record
        # file cannot be written: Hydra turns a callback's error into a warning
        self.failures: dict[int, dict] = {}
        self.sweep_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_job_folders(config)
        check_records_folder(config)
        self.sweep_id = uuid.uuid4().hex
        os.environ[SWEEP_ID_ENV] = self.sweep_id  # the jobs', in this process or started by it

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
        sweep_id = _this_sweep_id()
        if sweep_id is not None:  # None: no sweep callback started this job; memory only
            write_json(_records(config, sweep_id) / f"{job}.json", record, "hydra.sweep.dir")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if os.environ.get(SWEEP_ID_ENV) == self.sweep_id:
            del os.environ[SWEEP_ID_ENV]
        records, unreadable = dict(self.failures), 0
        if self.sweep_id is not None:
            try:
                found, unreadable = read_records(_records_root(config) / self.sweep_id)
                records = {**found, **self.failures}
                shutil.rmtree(_records_root(config) / self.sweep_id, ignore_errors=True)
            except Exception as err:  # noqa: BLE001 - a failed sweep must never exit 0
                print(f"warning: the failed jobs' records were not read: {err}", file=sys.stderr)
                unreadable += 1
        report(records, unreadable)


def report(records: dict[int, dict], unreadable: int) -> None:
    """Name each failed job and exit 2 (user errors only) or 1; nothing when none failed."""
    if not records and not unreadable:
        return
    lines = [summary_line(record) for _, record in sorted(records.items())]
    if unreadable:
        lines.append(
            f"error: sweep: {unreadable} failed job record(s) could not be read (see the "
            "warnings above); the job logs in hydra.sweep.dir say which jobs failed"
        )
    user_errors = not unreadable and all(r["user_error"] for r in records.values())
    _exit(*lines, code=USER_ERROR_EXIT if user_errors else CRASH_EXIT)
