"""Writing results safely: output places are checked before any work, files appear atomically.

A long evaluation or training run must not end in a traceback because ``out=`` points at a
read-only folder, and a crash or a full disk in the middle of a write must never leave a truncated
file where a complete one stood. Every file is written to a temporary name in its own folder and
moved into place with ``os.replace`` (atomic on POSIX within one filesystem), so readers see the
previous version or the new one, never half of one.
"""

from __future__ import annotations

import glob
import json
import math
import os
import tempfile
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMP_HEX = "[0-9a-f]" * 12  # the random part of write_atomic's temporary names


class OutputError(OSError):
    """An output place that cannot be written; the message is one line naming the path."""


def _describe(err: OSError) -> str:
    return err.strerror or type(err).__name__


def ensure_writable_dir(folder: str | Path, option: str) -> Path:
    """Create ``folder`` if needed and prove it writable with a probe file, before any work."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise OutputError(
            f"{option}: cannot write to folder {folder} ({_describe(err)}); choose a writable place"
        ) from err
    return folder


def ensure_writable_file(path: str | Path, option: str, inputs=()) -> Path:
    """Check that ``path`` can be (re)written, before any work: it is not a folder nor one of
    ``inputs``, and the temporary file ``write_atomic`` will need beside it can be made (a name
    too long for the file system fails here, not after the work)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option}={path} is a folder; give a file name")
    refuse_overwriting(path, inputs, option)
    ensure_writable_dir(path.parent, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{option}: file {path} is read-only; choose another name")
    try:
        with _temporary_beside(path):
            pass
    except OSError as err:
        raise OutputError(f"{option}: cannot write {path} ({_describe(err)})") from err
    return path


def refuse_overwriting(path: str | Path, inputs, option: str) -> None:
    """An output that is one of the inputs (the same file, also through a link, a hard link or
    a ``missing/..`` detour) is refused: what a user gave to read is never replaced by what was
    made from it."""
    path = Path(path)
    for source in inputs:
        if source and _same_file(path, Path(source)):
            raise OutputError(
                f"{option}={path} is the input {source}; writing it would destroy the input: "
                "give another output name"
            )


def _same_file(path: Path, source: Path) -> bool:
    # realpath also settles "missing/.." the way the write will once the folder is made
    if os.path.realpath(path) == os.path.realpath(source):
        return True
    return path.exists() and source.exists() and os.path.samefile(path, source)


@contextmanager
def _temporary_beside(path: Path):
    """A new, exclusively created file next to ``path`` (permissions from the umask, like any
    file the user writes); removed unless it was moved into place."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "xb") as f:
            yield f, tmp
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(
    path: str | Path,
    write: Callable[[BinaryIO], None],
    option: str = "output",
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """``write(file)`` into a temporary file beside ``path``, flushed to disk, checked by
    ``verify(temporary_path)`` when given, then renamed onto ``path``.

    Whatever goes wrong (an exception from ``write`` or ``verify``, a kill, a full disk) the
    previous file at ``path`` stays as it was and the temporary file is removed; an ``OSError``
    (read-only, disk full) names ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _temporary_beside(path) as (f, tmp):
            write(f)
            f.flush()
            os.fsync(f.fileno())
            f.close()
            if verify is not None:
                verify(tmp)
            os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"{option}: cannot write {path} ({_describe(err)})") from err
    return path


def write_text(path: str | Path, text: str, option: str = "output") -> Path:
    """UTF-8 ``text`` written atomically (reports, tables, notes)."""
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")), option)


def remove_stale_temporaries(path: str | Path) -> int:
    """Delete temporary files that a killed :func:`write_atomic` left beside ``path``
    (``.<name>.<12 hex digits>.tmp``, exactly the names it makes); returns how many."""
    path = Path(path)
    removed = 0
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.{TEMP_HEX}.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def json_safe(value):
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN/inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | Path, data, option: str = "out") -> Path:
    """Strict JSON (a missing or non-finite number is ``null``), written atomically."""
    text = json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n"
    return write_atomic(path, lambda f: f.write(text.encode()), option)
