"""The files of --out are rendered first and written atomically: a full disk or a failed
rendering never leaves a truncated file, and the error names the path."""

from __future__ import annotations

import errno
import os

import pytest

import srdistill.outputs
from srdistill.outputs import write_json
from srdistill.report import figure
from tests.helpers.cli import assert_one_line_error, run_script

FILES = ("report.md", "report.tex", "report.csv", "tradeoff.png", "tradeoff_flops.png")


def _sweep(root, psnr: float, **extra):
    tags = {"table": "mcad_tab3", "method": "scratch", "scale": 4, "seed": 0}
    val = {"val/Set5/psnr_y": psnr, "val/Set5/ssim_y": 0.9}
    write_json(root / "r" / "results.json", {"val": val, "steps": 1, "tags": tags, **extra})
    return root


def _old_report(tmp_path) -> dict[str, bytes]:
    """A complete report in tmp_path/o, and its bytes; then the sweep's numbers change."""
    proc = run_script(
        "-m", "srdistill.report", _sweep(tmp_path / "s", 30.0), "--out", tmp_path / "o"
    )
    assert proc.returncode == 0, proc.stderr
    _sweep(tmp_path / "s", 31.0)
    return {name: (tmp_path / "o" / name).read_bytes() for name in FILES}


def _disk_full_at(monkeypatch, name: str) -> None:
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(dst) == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(srdistill.outputs.os, "replace", replace)


@pytest.mark.parametrize("full_at", ["report.md", "report.tex", "tradeoff.png"])
def test_a_full_disk_leaves_every_file_whole_and_names_the_path(tmp_path, monkeypatch, full_at):
    old = _old_report(tmp_path)
    _disk_full_at(monkeypatch, full_at)
    proc = run_script("-m", "srdistill.report", tmp_path / "s", "--out", tmp_path / "o")
    assert_one_line_error(proc, str(tmp_path / "o" / full_at), "No space left on device")
    replaced = FILES[: FILES.index(full_at)]
    for name in FILES:
        now = (tmp_path / "o" / name).read_bytes()
        assert (now != old[name]) if name in replaced else (now == old[name]), name
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(FILES)  # no temporaries
    if replaced:
        assert f"replaced {', '.join(replaced)}" in proc.stderr


def test_a_failed_rendering_leaves_all_old_files_as_they_were(tmp_path, monkeypatch):
    old = _old_report(tmp_path)

    def no_fonts(*args, **kwargs):
        raise OSError(errno.ENOENT, "no font cache")

    monkeypatch.setattr(figure, "tradeoff_points", no_fonts)
    proc = run_script("-m", "srdistill.report", tmp_path / "s", "--out", tmp_path / "o")
    assert_one_line_error(proc, "no font cache")
    assert {name: (tmp_path / "o" / name).read_bytes() for name in FILES} == old


def test_a_figure_this_report_cannot_draw_is_not_left_from_an_earlier_one(tmp_path):
    # dsclora_tab1 publishes RFDN's parameters but not its FLOPs: only our runs' count draws it
    sweep = _sweep(tmp_path / "s", 26.0, flops_g=1.5)
    result = sweep / "r" / "results.json"
    result.write_text(result.read_text().replace("mcad_tab3", "dsclora_tab1"))
    result.write_text(result.read_text().replace('"scratch"', '"rfdn"').replace("Set5", "Urban100"))
    out = tmp_path / "o"
    assert run_script("-m", "srdistill.report", sweep, "--out", out).returncode == 0
    assert (out / "tradeoff_flops.png").is_file()
    result.write_text(result.read_text().replace('"flops_g": 1.5', '"flops_g": null'))
    proc = run_script("-m", "srdistill.report", sweep, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert not (out / "tradeoff_flops.png").exists() and (out / "tradeoff.png").is_file()
    assert f"removed {out / 'tradeoff_flops.png'}" in proc.stdout


@pytest.mark.parametrize("in_the_way", ["report.md", "tradeoff_flops.png"])
def test_a_folder_in_place_of_a_report_file_is_refused_before_any_file_is_replaced(
    tmp_path, in_the_way
):
    old = _old_report(tmp_path)
    (tmp_path / "o" / in_the_way).unlink()
    (tmp_path / "o" / in_the_way).mkdir()
    proc = run_script("-m", "srdistill.report", tmp_path / "s", "--out", tmp_path / "o")
    assert_one_line_error(proc, "--out", str(tmp_path / "o" / in_the_way), "is a folder")
    for name in set(FILES) - {in_the_way}:
        assert (tmp_path / "o" / name).read_bytes() == old[name], name
