"""Cache entries for training data: arrays keyed by content and checked when read.

Decoding a 2K PNG costs tens of milliseconds, far more than cutting a 48 x 48 patch from it, so
decoded images (``decoded_cache``), generated LR images and the teacher's outputs are kept on
disk as ``.npy`` files read memory-mapped: a patch touches only the rows it needs.

Entries are named after the SHA-256 of their source file's bytes (``file_sha256``, computed once
per run when the dataset is built), never after its size or mtime, which a copy tool can keep
while the pixels change. Each entry is a plain ``.npy`` (``np.load`` reads it) followed by a
fixed-size trailer recording what the entry is (``identity``: its source's digest and what was
made from it) and the SHA-256 of its array bytes. ``read_entry`` serves an entry only when it
is a regular file (a symbolic link, a FIFO or a device is refused before it is opened for
reading; the open itself never blocks), its trailer names the identity asked for, its array has
the expected shape and dtype and its bytes match the recorded checksum. The checksum is checked
once per process and entry (again if the file changes), so serving a patch costs no more than
a memory map. Entries are written through ``srdistill.outputs.write_atomic``: a reader sees the
whole entry or none, and a full disk names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from srdistill.data.images import open_image, upright_size
from srdistill.outputs import write_atomic
from srdistill.regular_files import NotRegularFileError, open_regular, stat_regular

TRAILER_MAGIC = b"SRDISTILL-CACHE-ENTRY 1\n"
TRAILER_SIZE = 512
NOT_REGULAR = "is a symbolic link or not a regular file"
_CHECKED: dict[str, tuple] = {}  # path -> (file state, identity, checksum) verified here


class EntryError(ValueError):
    """A cache entry that must not be served; the message says why (without the path)."""


def image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) as decoded (EXIF orientation applied), from the header alone; None
    where it cannot be read."""
    try:
        with open_image(path) as img:
            return upright_size(img)
    except (OSError, ValueError, SyntaxError):
        return None


def _trailer(identity: str, checksum: str) -> bytes:
    text = json.dumps({"identity": identity, "sha256": checksum}).encode()
    body = TRAILER_MAGIC + text
    if len(body) + 1 > TRAILER_SIZE:
        raise ValueError(f"cache entry identity too long: {identity!r}")
    return body + b" " * (TRAILER_SIZE - len(body) - 1) + b"\n"


def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's bytes in C order."""
    data = np.ascontiguousarray(array)
    return hashlib.sha256(data.reshape(-1).view(np.uint8).data).hexdigest()


def write_entry(path: Path, array: np.ndarray, identity: str, option: str = "cache") -> str:
    """Store ``array`` as an entry made for ``identity``, atomically; returns its checksum."""
    data = np.ascontiguousarray(array)
    checksum = array_sha256(data)

    def write(f) -> None:
        np.save(f, data, allow_pickle=False)
        f.write(_trailer(identity, checksum))

    write_atomic(path, write, option)
    return checksum


def open_cache_file(path: Path) -> int:
    """A read-only descriptor of a cache file, refused (``EntryError``) unless it is a regular
    file: a link, a FIFO or a device is refused before any open, and one swapped in before the
    open is refused without blocking (``srdistill.regular_files``). ``FileNotFoundError`` when
    there is no file."""
    try:
        stat_regular(path, follow_links=False)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise EntryError(f"cannot be read ({err.strerror})") from err
    except NotRegularFileError:
        raise EntryError(NOT_REGULAR) from None
    try:
        return open_regular(path, follow_links=False)
    except OSError as err:
        raise EntryError(f"cannot be opened ({err.strerror})") from err
    except NotRegularFileError:
        raise EntryError(NOT_REGULAR) from None


def _read_trailer(f, size: int) -> dict:
    if size < TRAILER_SIZE:
        raise EntryError("is too short to be a cache entry")
    f.seek(size - TRAILER_SIZE)
    raw = f.read(TRAILER_SIZE)
    if not raw.startswith(TRAILER_MAGIC):
        raise EntryError("has no cache-entry trailer (written by another version, or damaged)")
    try:
        trailer = json.loads(raw[len(TRAILER_MAGIC) :])
    except ValueError as err:
        raise EntryError("has a damaged trailer") from err
    if not isinstance(trailer, dict) or not all(
        isinstance(trailer.get(k), str) for k in ("identity", "sha256")
    ):
        raise EntryError("has a damaged trailer")
    return trailer


def entry_checksum(path: Path) -> str:
    """The checksum an entry's trailer records (check the entry with ``read_entry`` first)."""
    with os.fdopen(open_cache_file(path), "rb") as f:
        return _read_trailer(f, os.fstat(f.fileno()).st_size)["sha256"]


def _read_npy_header(f) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data offset) from the ``.npy`` header, which is never unpickled."""
    f.seek(0)
    try:
        version = np.lib.format.read_magic(f)
        reader = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }[version]
        shape, fortran_order, dtype = reader(f)
    except (ValueError, KeyError, OSError, SyntaxError) as err:
        raise EntryError("is not a .npy array") from err
    if fortran_order or dtype.hasobject:
        raise EntryError("is not a plain C-ordered array")
    return tuple(shape), dtype, f.tell()


def _state(info: os.stat_result) -> tuple:
    # ctime changes with any write, even when a tool restores the mtime
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def read_entry(
    path: Path,
    identity: str,
    shape: tuple[int, ...],
    dtype,
    checksum: str | None = None,
) -> np.ndarray:
    """The entry at ``path`` memory-mapped read-only, when it is exactly what was written for
    ``identity`` (and, when given, has the ``checksum`` recorded elsewhere, say a manifest).

    Raises ``FileNotFoundError`` when there is no entry, ``EntryError`` when it must not be
    served."""
    fd = open_cache_file(path)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        trailer = _read_trailer(f, info.st_size)
        if trailer["identity"] != identity:
            raise EntryError("was made from another source image or for another cache")
        if checksum is not None and trailer["sha256"] != checksum:
            raise EntryError("is not the entry the cache's manifest records")
        found_shape, found_dtype, offset = _read_npy_header(f)
        if found_shape != tuple(shape) or found_dtype != np.dtype(dtype):
            raise EntryError(f"holds a {found_dtype} {found_shape} array, not {dtype} {shape}")
        if offset + np.dtype(dtype).itemsize * int(np.prod(shape)) + TRAILER_SIZE != info.st_size:
            raise EntryError("has the wrong size for its array")
        array = np.memmap(f, dtype=found_dtype, mode="r", offset=offset, shape=found_shape)
    _verify_once(path, info, trailer, array)
    return array


def _verify_once(path: Path, info: os.stat_result, trailer: dict, array: np.ndarray) -> None:
    key = str(path)
    state = (_state(info), trailer["identity"], trailer["sha256"])
    if _CHECKED.get(key) == state:
        return
    if array_sha256(array) != trailer["sha256"]:
        raise EntryError("does not match its checksum (damaged or edited)")
    _CHECKED[key] = state


def read_decoded(path: Path, identity: str, shape: tuple[int, int, int]) -> np.ndarray | None:
    """A decoded uint8 image entry, or None where it must be made (and written) again: these
    caches rebuild cheaply, so an entry that does not check out is replaced, not an error."""
    try:
        return read_entry(path, identity, shape, np.uint8)
    except (FileNotFoundError, EntryError):
        return None


def write_decoded(path: Path, image: np.ndarray, identity: str) -> None:
    """Store a decoded uint8 (H, W, 3) image as the entry for ``identity``."""
    write_entry(path, np.asarray(image, dtype=np.uint8), identity, "data.lr_cache_dir")
