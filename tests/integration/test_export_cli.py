"""export.py never replaces a good file with one that failed its check, and refuses bad options
before reading anything."""

from __future__ import annotations

import pytest
import torch

from srdistill import export_formats as export
from srdistill.models.detect import config_args
from srdistill.models.registry import build_from_record
from tests.helpers.cli import assert_one_line_error, run_script

ARCH = ("edsr_tiny_student", config_args("edsr_tiny_student", 2))


def tiny_weights(path, seed: int = 0):
    torch.manual_seed(seed)
    torch.save(build_from_record(*ARCH, None).state_dict(), path)
    return path


@pytest.fixture
def weights(tmp_path):
    return tiny_weights(tmp_path / "tiny.pth")


def export_run(weights, out, *options):
    return run_script(
        "export.py", f"ckpt={weights}", "model=edsr_tiny_student", "scale=2", f"out={out}", *options
    )


@pytest.mark.parametrize("fmt", ["pth", "safetensors", "torchscript"])
def test_a_failed_check_keeps_the_previous_file(weights, tmp_path, monkeypatch, fmt):
    out = tmp_path / f"good.{fmt}"
    assert export_run(weights, out, f"format={fmt}").returncode == 0
    good = out.read_bytes()
    real = export.run_exported

    def off_by_a_step(*args, **kwargs):  # the written file computes something else
        return real(*args, **kwargs) + 1 / 255

    monkeypatch.setattr(export, "run_exported", off_by_a_step)
    newer = tiny_weights(tmp_path / "newer.pth", seed=1)
    proc = export_run(newer, out, f"format={fmt}", "tolerance=0")
    assert out.read_bytes() == good
    assert_one_line_error(proc, "verification failed", str(out), "nothing was written")
    assert {p.name for p in tmp_path.iterdir()} == {weights.name, newer.name, out.name}


@pytest.mark.parametrize("tolerance", ["abc", "nan", "-1", "inf", "true"])
def test_a_tolerance_that_is_not_a_number_at_least_zero_is_refused_before_any_work(
    weights, tmp_path, tolerance
):
    out = tmp_path / "x.pth"
    proc = export_run(weights, out, f"tolerance={tolerance}")
    assert_one_line_error(proc, "tolerance=", "number >= 0")
    assert not out.exists()


def test_a_safetensors_file_is_recognised_by_its_content_whatever_its_name(weights, tmp_path):
    out = tmp_path / "student.safetensors"
    assert export_run(weights, out, "format=safetensors").returncode == 0
    renamed = out.rename(tmp_path / "student.bin")
    proc = run_script("eval.py", f"ckpt={renamed}", "scale=2", f"out={tmp_path / 'r.json'}")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_an_out_that_is_the_input_checkpoint_is_refused_and_the_input_kept(weights, tmp_path):
    before = weights.read_bytes()
    link = tmp_path / "link.pth"
    link.symlink_to(weights)
    for out in (weights, link):
        proc = export_run(weights, out)
        assert_one_line_error(proc, "out=", "is the input", "give another output name")
        assert weights.read_bytes() == before


def test_an_out_name_too_long_for_the_file_system_is_refused_before_any_work(weights, tmp_path):
    out = tmp_path / ("a" * 240 + ".pth")  # fits alone, not with the temporary name's suffix
    proc = export_run(weights, out)
    assert_one_line_error(proc, "out:", "File name too long")
    assert "wrote" not in proc.stdout


def test_a_temporary_left_by_a_killed_export_is_removed_by_the_next(weights, tmp_path):
    out = tmp_path / "model.pth"
    left = tmp_path / ".model.pth.0123456789ab.tmp"
    left.write_bytes(b"half an export")
    assert export_run(weights, out).returncode == 0
    assert not left.exists() and out.is_file()


def test_an_out_reaching_the_input_through_a_missing_folder_is_refused(weights, tmp_path):
    before = weights.read_bytes()
    proc = export_run(weights, tmp_path / "not_yet" / ".." / weights.name)
    assert_one_line_error(proc, "is the input")
    assert weights.read_bytes() == before


def test_only_names_write_atomic_makes_are_cleared_never_an_input(weights, tmp_path):
    kept = tmp_path / ".model.pth.keep.tmp"
    kept.write_bytes(weights.read_bytes())
    assert export_run(kept, tmp_path / "model.pth").returncode == 0
    assert kept.read_bytes() == weights.read_bytes()
