"""Opening a path only when it is a regular file, without ever blocking.

A FIFO blocks on open and on read until a writer comes, and a device such as /dev/zero never
ends, so a path that a user or a cache folder names must not be opened unless it is a regular
file. Its type is checked twice: before the open (``stat``, or ``lstat`` where symbolic links are
refused) and on what was opened (``fstat``). The open is non-blocking, so a FIFO swapped in
between the two checks opens at once and is then refused; where links are refused,
``O_NOFOLLOW`` refuses a link swapped in. Callers turn ``NotRegularFileError`` and the
``OSError`` of each step into their own messages.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotRegularFileError(ValueError):
    """The path is a folder, a FIFO, a device or a socket (or a symbolic link, where refused)."""


def stat_regular(path: str | Path, *, follow_links: bool) -> os.stat_result:
    """``path``'s status, refused with ``NotRegularFileError`` unless it is a regular file.

    ``lstat`` unless ``follow_links``, so that a link is refused rather than followed. The
    ``OSError`` of the stat itself (no such file, a dangling link) is raised as it is."""
    info = os.stat(path) if follow_links else os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFileError(f"{path} is not a regular file")
    return info


def open_regular(path: str | Path, *, follow_links: bool) -> int:
    """A read-only descriptor of ``path``, which ``stat_regular`` found to be a regular file.

    Opened non-blocking (and ``O_NOFOLLOW`` unless ``follow_links``); ``NotRegularFileError``
    when what was opened is not a regular file after all. The ``OSError`` of the open itself
    (permission denied, a link where links are refused) is raised as it is."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= os.O_NOFOLLOW
    fd = os.open(path, flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFileError(f"{path} is not a regular file")
    return fd
