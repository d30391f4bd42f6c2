"""Reading the files the report is given: regular files of bounded size, UTF-8, strict JSON.

Every input (results.json, .hydra/overrides.yaml, --baseline, --eval-json files) goes through
:func:`read_input`, so that no path the user names can hang the report or exhaust its memory:
a FIFO (which blocks on open and read until a writer comes) or a device such as /dev/zero (which
never ends) is refused before it is read, and a regular file is read to at most ``INPUT_LIMIT``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from srdistill.regular_files import NotRegularFileError, open_regular, stat_regular

# A results.json is a few KB (an eval.py file smaller still); 16 MiB leaves room for a long
# grad_share history while still refusing a file that is plainly not one we wrote.
INPUT_LIMIT = 16 * 2**20


class ReportError(ValueError):
    """A folder, option or file the report cannot use; reported as one ``error:`` line."""


def _too_large(path: Path, limit: int) -> ReportError:
    return ReportError(f"{path}: larger than {limit} bytes; not a file train.py or eval.py writes")


def _not_regular(path: Path) -> ReportError:
    return ReportError(f"{path}: not a regular file")


def read_input(path: Path, limit: int = INPUT_LIMIT) -> bytes:
    """The bytes of ``path`` (a symbolic link is followed) if it is a regular file of at most
    ``limit`` bytes; anything else is a :class:`ReportError` naming it."""
    try:
        info = stat_regular(path, follow_links=True)
    except OSError as err:  # a dangling link, a folder that cannot be entered
        raise ReportError(f"{path}: cannot be read ({err.strerror}); fix or remove it") from None
    except NotRegularFileError:
        raise _not_regular(path) from None
    if info.st_size > limit:
        raise _too_large(path, limit)
    try:
        fd = open_regular(path, follow_links=True)
    except NotRegularFileError:  # a FIFO put in its place after the stat
        raise _not_regular(path) from None
    with os.fdopen(fd, "rb") as file:
        data = file.read(limit + 1)  # a file that grows, or a /proc file of stated size 0
    if len(data) > limit:
        raise _too_large(path, limit)
    return data


def read_text(path: Path) -> str:
    try:
        return read_input(path).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ReportError(
            f"{path}: not UTF-8 text (byte {err.start}); not a file we wrote"
        ) from None


class _NotStrictJson(Exception):
    pass


def _no_constant(name: str):
    raise _NotStrictJson(f"holds {name}, which is not JSON (train.py writes null for it)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotStrictJson(f"holds {text:.40}, a number too large for a float")
    return value


def read_json(path: Path):
    """Strict JSON, as :func:`srdistill.outputs.write_json` writes it."""
    text = read_text(path)
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as err:
        raise ReportError(f"{path} is not valid JSON ({err.msg}, line {err.lineno})") from None
    except _NotStrictJson as err:
        raise ReportError(f"{path}: {err}") from None
    except RecursionError:
        raise ReportError(f"{path}: nested too deeply to be a results file") from None
    except ValueError as err:  # e.g. an integer over Python's 4300-digit conversion limit
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise ReportError(f"{path}: not a results file ({reason})") from None
