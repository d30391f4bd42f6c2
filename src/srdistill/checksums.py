"""The one SHA-256 of a file's bytes: zoo downloads are verified with it, training images are
keyed by it (their caches follow the pixels, not a size and mtime a copy tool can keep)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of ``path``'s bytes as lowercase hex, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
