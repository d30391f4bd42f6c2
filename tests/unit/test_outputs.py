"""Outputs: checked before work, written atomically, strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from srdistill.outputs import (
    OutputError,
    ensure_writable_dir,
    ensure_writable_file,
    remove_stale_temporaries,
    write_atomic,
    write_json,
)


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("previous")

    def half_written(file) -> None:
        file.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"results\.json .*No space left"):
        write_atomic(target, half_written)
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_the_check_sees_the_complete_new_file_and_a_refusal_keeps_the_previous(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    seen = []

    def refuse(written: Path) -> None:
        seen.append((written.parent, written.read_bytes()))
        raise ValueError("verification failed")

    with pytest.raises(ValueError, match="verification failed"):
        write_atomic(target, lambda f: f.write(b"new and complete"), verify=refuse)
    assert seen == [(tmp_path, b"new and complete")]
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    write_atomic(target, lambda f: f.write(b"accepted"), verify=lambda written: None)
    assert target.read_bytes() == b"accepted"


def test_temporaries_a_killed_writer_left_are_removed_and_nothing_else(tmp_path):
    target = tmp_path / "entry[0].pt"
    left = [tmp_path / ".entry[0].pt.0123456789ab.tmp", tmp_path / ".entry[0].pt.ffffffffffff.tmp"]
    kept = [
        target,
        tmp_path / ".entry[1].pt.0123456789ab.tmp",  # another file's
        tmp_path / "entry[0].pt.tmp",
        tmp_path / ".entry[0].pt.keep.tmp",  # not a name write_atomic makes: the user's
    ]
    for path in left + kept:
        path.write_bytes(b"x")
    assert remove_stale_temporaries(target) == 2
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_json_is_strict_and_non_finite_numbers_become_null(tmp_path):
    path = write_json(tmp_path / "r.json", {"psnr": math.nan, "nested": [1.5, math.inf], "n": 3})
    text = path.read_text()
    assert json.loads(text) == {"psnr": None, "nested": [1.5, None], "n": 3}
    assert "NaN" not in text and "Infinity" not in text


def test_an_output_below_a_file_is_refused_with_the_option_name(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"^out: cannot write to folder .*file"):
        ensure_writable_file(blocker / "r.json", "out")
    with pytest.raises(OutputError, match=r"^hydra\.run\.dir: "):
        ensure_writable_dir(blocker / "run", "hydra.run.dir")


def test_the_writability_probe_leaves_nothing_behind(tmp_path):
    ensure_writable_dir(tmp_path / "new" / "folder", "out")
    assert list((tmp_path / "new" / "folder").iterdir()) == []


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
