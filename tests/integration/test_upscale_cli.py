"""``srdistill-upscale`` and ``export.py`` formats, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srdistill.data.images import mod_crop, read_rgb, to_tensor
from srdistill.metrics.sr import psnr_per_image
from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.shared import requires_shared, shared_path
from tests.integration.test_crafted_checkpoints import run_checkpoint, tiny_student_state
from tests.unit.data.test_images import (
    damaged_png,
    half_jpeg,
    header_only_png,
    with_orientation,
)

SET5 = ("data", "benchmarks", "Set5")
SPAN_TINY = ("weights", "span_tiny_ch26_x4.pth")
TINY_RECORD = {
    "model": "edsr_tiny_student",
    "model_args": {"scale": 2, "num_feat": 16, "num_block": 2},
    "lora": None,
    "average_weight": None,
}


def upscale(*args: object):
    return run_script("-m", "srdistill.cli.upscale", *args)


def psnr_y(sr_png: Path, hr_png: Path, scale: int) -> float:
    sr, hr = read_rgb(sr_png)[0], mod_crop(read_rgb(hr_png)[0], scale)
    return float(psnr_per_image(to_tensor(sr)[None], to_tensor(hr)[None], scale, "y")[0])


@pytest.mark.slow
@requires_shared(*SET5)
@requires_shared(*SPAN_TINY)
def test_upscaling_baby_gives_eval_py_psnr(tmp_path):
    root = tmp_path / "bench" / "Set5"
    (root / "HR").mkdir(parents=True)
    (root / "LR_bicubic" / "X4").mkdir(parents=True)
    hr = shared_path(*SET5, "HR", "baby.png")
    lr = shared_path(*SET5, "LR_bicubic", "X4", "babyx4.png")
    (root / "HR" / "baby.png").symlink_to(hr)
    (root / "LR_bicubic" / "X4" / "babyx4.png").symlink_to(lr)
    weights = shared_path(*SPAN_TINY)
    proc = upscale(lr, "-o", tmp_path / "out", "--ckpt", weights)
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluated = run_script(
        "eval.py",
        "model=span_ch26",
        f"ckpt={weights}",
        f"data.root={tmp_path / 'bench'}",
        "data.sets=[Set5]",
        f"out={tmp_path / 'results.json'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    expected = json.loads((tmp_path / "results.json").read_text())["Set5"]["psnr"]
    # eval.py rounds to 4 decimals
    assert abs(psnr_y(tmp_path / "out" / "babyx4.png", hr, 4) - expected) <= 1e-4


def lr_photo(path: Path, size=(20, 14), mode="RGB") -> Path:
    rng = np.random.default_rng(0)
    channels = {"RGB": 3, "RGBA": 4}[mode]
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], channels), np.uint8), mode).save(path)
    return path


def expected_output(image: Path) -> np.ndarray:
    """What the tiny student of ``run_checkpoint`` makes of ``image``, as 8 bits."""
    from srdistill.models.backbones.edsr import EDSR

    network = EDSR(scale=2, num_feat=16, num_block=2).eval()
    network.load_state_dict(tiny_student_state())
    with torch.no_grad():
        out = network(to_tensor(read_rgb(image)[0])[None])[0]
    return out.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


@pytest.mark.slow
def test_a_run_checkpoint_and_its_export_upscale_without_model(tmp_path):
    torch.save(run_checkpoint(TINY_RECORD), tmp_path / "last.ckpt")
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    lr_photo(photos / "a.png")
    lr_photo(photos / "sub" / "b.jpg", size=(9, 11))
    proc = upscale(photos, "-o", tmp_path / "from_run", "--ckpt", tmp_path / "last.ckpt")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("a.png", "sub/b.png"):
        written = np.asarray(Image.open(tmp_path / "from_run" / name))
        source = photos / (name if name == "a.png" else "sub/b.jpg")
        assert np.array_equal(written, expected_output(source)), name

    exported = tmp_path / "student.pth"  # a .pth carries no name: told from its shapes
    proc = run_script(
        "export.py", f"ckpt={tmp_path / 'last.ckpt'}", f"out={exported}", "format=pth"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "verified pth: max abs difference 0 on chelsea" in proc.stdout
    proc = upscale(photos / "a.png", "-o", tmp_path / "from_export", "--ckpt", exported)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "from_export" / "a.png")),
        np.asarray(Image.open(tmp_path / "from_run" / "a.png")),
    )


def test_alpha_is_upscaled_with_bicubic_and_reattached(tmp_path):
    torch.save(run_checkpoint(TINY_RECORD), tmp_path / "last.ckpt")
    image = lr_photo(tmp_path / "logo.png", mode="RGBA")
    proc = upscale(image, "-o", tmp_path / "out", "--ckpt", tmp_path / "last.ckpt")
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = Image.open(tmp_path / "out" / "logo.png")
    assert written.mode == "RGBA" and written.size == (40, 28)
    pixels = np.asarray(written)
    assert np.array_equal(pixels[..., :3], expected_output(image))
    from srdistill.data.matlab_bicubic import imresize

    alpha = np.asarray(Image.open(image))[..., 3].astype(np.float64) / 255
    bicubic = np.clip(np.round(imresize(alpha, scale=2.0) * 255), 0, 255)
    assert np.array_equal(pixels[..., 3], bicubic.astype(np.uint8))


def frames(path: Path) -> Path:
    first, *rest = (Image.new("RGB", (10, 8), color) for color in ("red", "green", "blue"))
    first.save(path, save_all=True, append_images=rest)
    return path


def float_tiff(path: Path, top: float) -> Path:
    Image.fromarray(np.linspace(0, top, 80, dtype=np.float32).reshape(8, 10), "F").save(path)
    return path


@pytest.mark.parametrize(
    "case,needles",
    [
        ("missing input", ["nothere.png", "no such file"]),
        ("unreadable image", ["broken.png", "cannot read image"]),
        ("unknown model", ["--model=span_ch99", "not one of srdistill's models"]),
        ("ckpt that does not fit", ["--ckpt", "does not fit model span_ch26"]),
        ("broken ckpt", ["--ckpt", "broken.pth"]),
        ("output not writable", ["-o/--output", "cannot write"]),
        ("decompression bomb", ["bomb.png", "10,000,000,000 pixels", "limit of 178,956,970"]),
        ("animation", ["anim.gif", "holds 3 frames", "save the frame you want"]),
        ("multi-page tiff", ["pages.tif", "holds 3 frames"]),
        ("float image outside [0, 1]", ["hdr.tif", "floating-point", "on [0, 1]"]),
    ],
)
def test_bad_input_is_one_line_before_any_work(tmp_path, case, needles):
    weights = tmp_path / "tiny.pth"
    torch.save(tiny_student_state(), weights)
    good = lr_photo(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "file").write_text("a file where a folder should be")
    args = {
        "missing input": [tmp_path / "nothere.png", "--ckpt", weights],
        "unreadable image": [good, tmp_path / "broken.png", "--ckpt", weights],
        "unknown model": [good, "--ckpt", weights, "--model", "span_ch99"],
        "ckpt that does not fit": [good, "--ckpt", weights, "--model", "span_ch26"],
        "broken ckpt": [good, "--ckpt", tmp_path / "broken.pth"],
        "output not writable": [good, "--ckpt", weights],
        "decompression bomb": [good, header_only_png(tmp_path / "bomb.png", 100_000, 100_000)],
        "animation": [good, frames(tmp_path / "anim.gif")],
        "multi-page tiff": [good, frames(tmp_path / "pages.tif")],
        "float image outside [0, 1]": [good, float_tiff(tmp_path / "hdr.tif", 3.5)],
    }[case]
    if "--ckpt" not in args:
        args += ["--ckpt", weights]
    out = tmp_path / "file" / "out" if case == "output not writable" else tmp_path / "out"
    proc = upscale(*args, "-o", out)
    assert_one_line_error(proc, *needles)
    if "ckpt" in case or "model" in case:  # refused before the output folder is made
        assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("fmt", ["safetensors", "torchscript", "onnx"])
def test_export_cli_writes_and_verifies_each_format(tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="needs onnxruntime")
    weights = tmp_path / "tiny.pth"
    torch.save(tiny_student_state(), weights)
    out = tmp_path / f"student.{fmt}"
    proc = run_script(
        "export.py",
        f"ckpt={weights}",
        "model=edsr_tiny_student",
        f"out={out}",
        f"format={fmt}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"verified {fmt}: max abs difference" in proc.stdout and out.is_file()


def unchanged(path: Path, before: bytes) -> bool:
    return path.read_bytes() == before


@pytest.mark.parametrize("how", ["its own folder", "a symlink to its folder", "a hard link"])
def test_an_output_that_is_an_input_file_is_refused_and_the_input_kept(tmp_path, how):
    weights = tmp_path / "tiny.pth"
    torch.save(tiny_student_state(), weights)
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = lr_photo(photos / "photo.png")
    before = photo.read_bytes()
    out = photos
    if how == "a symlink to its folder":
        out = tmp_path / "link"
        out.symlink_to(photos)
    elif how == "a hard link":
        out = tmp_path / "out"
        out.mkdir()
        (out / "photo.png").hardlink_to(photo)
    proc = upscale(photo, "-o", out, "--ckpt", weights, "--model", "edsr_tiny_student")
    assert_one_line_error(proc, "-o/--output", f"{out / 'photo.png'}", f"input {photo}", "-o ")
    assert unchanged(photo, before)


def test_a_folder_search_skips_its_own_output_folder_inside_it(tmp_path):
    weights = tmp_path / "tiny.pth"
    torch.save(tiny_student_state(), weights)
    photos = tmp_path / "photos"
    photos.mkdir()
    lr_photo(photos / "p.png")
    for _ in range(2):
        proc = upscale(
            photos, "-o", photos / "up", "--ckpt", weights, "--model", "edsr_tiny_student"
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "wrote 1 image(s)" in proc.stdout
    assert sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.png")) == [
        "p.png",
        "up/p.png",
    ]


def test_a_sideways_stored_jpeg_is_upscaled_upright(tmp_path):
    torch.save(run_checkpoint(TINY_RECORD), tmp_path / "last.ckpt")
    stored = np.asarray(Image.open(lr_photo(tmp_path / "stored.png", size=(40, 24))))
    phone = with_orientation(tmp_path / "phone.jpg", stored, 6)  # stored 40x24, shown 24x40
    proc = upscale(phone, "-o", tmp_path / "out", "--ckpt", tmp_path / "last.ckpt")
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = Image.open(tmp_path / "out" / "phone.png")
    assert written.size == (48, 80)
    # the network saw the decoded JPEG turned clockwise, as viewers show it
    decoded = np.asarray(Image.open(phone).convert("RGB"))
    upright = Image.fromarray(np.ascontiguousarray(np.rot90(decoded, -1)))
    upright.save(tmp_path / "upright.png")
    assert np.array_equal(np.asarray(written), expected_output(tmp_path / "upright.png"))


def bicubic_x2(*args: object):
    return upscale(*args, "--model", "bicubic", "--scale", "2")


def test_a_file_upscale_did_not_write_is_never_replaced(tmp_path):
    up = tmp_path / "up"
    up.mkdir()
    lr_photo(up / "p.jpg")
    other = Image.fromarray(np.zeros((5, 5, 3), np.uint8))
    other.save(up / "p.png")  # a different photo, not given to upscale
    before = (up / "p.png").read_bytes()
    proc = bicubic_x2(up / "p.jpg", "-o", up)
    assert_one_line_error(proc, f"{up / 'p.png'}", "not written by srdistill-upscale", "-o")
    assert unchanged(up / "p.png", before)
    # its own outputs are rewritten when run again into the same folder
    for _ in range(2):
        proc = bicubic_x2(up / "p.jpg", "-o", tmp_path / "out")
        assert proc.returncode == 0, proc.stderr[-2000:]
    written = Image.open(tmp_path / "out" / "p.png")
    assert written.info["Software"] == "srdistill-upscale" and written.size == (40, 28)


@pytest.mark.parametrize("case", ["name too long", "half a jpeg", "damaged png pixels"])
def test_a_folder_with_one_bad_input_writes_nothing(tmp_path, case):
    photos = tmp_path / "photos"
    photos.mkdir()
    lr_photo(photos / "a.png")
    bad = {
        "name too long": lambda: lr_photo(photos / ("b" * 245 + ".png")),
        "half a jpeg": lambda: half_jpeg(photos / "z.jpg"),
        "damaged png pixels": lambda: damaged_png(photos / "z.png"),
    }[case]()
    proc = bicubic_x2(photos, "-o", tmp_path / "out")
    assert_one_line_error(proc, bad.name[:40])
    assert not any((tmp_path / "out").iterdir())


def test_an_empty_output_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proc = bicubic_x2(lr_photo(tmp_path / "p.jpg"), "-o", "")
    assert_one_line_error(proc, "-o/--output is empty")
    assert not (tmp_path / "p.png").exists()
