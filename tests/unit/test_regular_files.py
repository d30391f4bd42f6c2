"""Only regular files are opened, and nothing blocks: a FIFO, a device or a folder is refused
before the open, and one that the open meets anyway is refused right after it."""

from __future__ import annotations

import os

import pytest

from srdistill.regular_files import NotRegularFileError, open_regular, stat_regular
from tests.unit.data.test_decoded_cache import fails_instead_of_hanging


def test_a_regular_file_is_opened_read_only(tmp_path):
    path = tmp_path / "results.json"
    path.write_bytes(b"12345")
    assert stat_regular(path, follow_links=False).st_size == 5
    with os.fdopen(open_regular(path, follow_links=False), "rb") as file:
        assert file.read() == b"12345"
        with pytest.raises(OSError):
            file.write(b"6")


@pytest.mark.parametrize("follow_links", [False, True])
def test_a_fifo_a_device_or_a_folder_is_refused_before_the_open(tmp_path, follow_links):
    os.mkfifo(tmp_path / "fifo")
    for path in (tmp_path / "fifo", "/dev/null", tmp_path):
        with pytest.raises(NotRegularFileError, match="not a regular file"):
            stat_regular(path, follow_links=follow_links)


def test_what_the_open_meets_is_checked_again_without_blocking(tmp_path):
    # a FIFO swapped in after the stat: the non-blocking open returns, the fstat refuses it
    os.mkfifo(tmp_path / "fifo")
    with fails_instead_of_hanging(), pytest.raises(NotRegularFileError):
        open_regular(tmp_path / "fifo", follow_links=True)


def test_a_link_is_followed_only_when_asked(tmp_path):
    (tmp_path / "target").write_bytes(b"x")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    assert stat_regular(link, follow_links=True).st_size == 1
    os.close(open_regular(link, follow_links=True))
    with pytest.raises(NotRegularFileError):
        stat_regular(link, follow_links=False)
    with pytest.raises(OSError):  # a link swapped in after the stat: O_NOFOLLOW refuses it
        open_regular(link, follow_links=False)


def test_the_stats_own_error_is_raised_as_it_is(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(FileNotFoundError):
        stat_regular(tmp_path / "dangling", follow_links=True)
