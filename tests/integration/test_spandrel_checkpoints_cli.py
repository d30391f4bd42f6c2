"""A checkpoint of an architecture srdistill does not implement, recognised by spandrel, through
``srdistill-upscale`` and ``export.py`` without naming any model: the same loader as eval and
train, the same output as the network that saved it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srdistill.data.images import read_rgb, to_tensor
from srdistill.models.checkpoint import read_state_dict
from tests.helpers.cli import assert_one_line_error, run_script

spandrel = pytest.importorskip("spandrel")


def compact():
    """Real-ESRGAN's SRVGGNetCompact at x2, tiny and random."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    return Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).eval()


@pytest.fixture
def foreign(tmp_path) -> tuple[torch.nn.Module, Path]:
    """The network and its file, saved as such files are published (a params_ema wrapper)."""
    network = compact()
    path = tmp_path / "2x-TinyCompact.pth"
    torch.save({"params_ema": network.state_dict()}, path)
    return network, path


def lr_photo(path: Path) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (14, 20, 3), np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def as_8_bits(network, image: Path) -> np.ndarray:
    """What ``network`` makes of ``image``, rounded to 8 bits as upscale writes it."""
    with torch.no_grad():
        out = network(to_tensor(read_rgb(image)[0])[None])[0]
    return out.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def upscale(*args: object):
    return run_script("-m", "srdistill.cli.upscale", *args)


def test_upscale_runs_the_checkpoint_as_its_own_network_does(tmp_path, foreign):
    network, path = foreign
    photo = lr_photo(tmp_path / "photo.png")
    for model in ([], ["--model", "spandrel"]):
        out = tmp_path / f"out{len(model)}"
        proc = upscale(photo, "-o", out, "--ckpt", path, *model)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "network: Compact x2 (read by spandrel)" in proc.stdout
        written = np.asarray(Image.open(out / "photo.png"))
        assert np.array_equal(written, as_8_bits(network, photo)), model


def test_export_writes_the_architectures_own_weights_that_spandrel_reads_back(tmp_path, foreign):
    network, path = foreign
    out = tmp_path / "exported.safetensors"
    proc = run_script("export.py", f"ckpt={path}", f"out={out}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "verified safetensors: max abs difference 0 on chelsea" in proc.stdout
    written = read_state_dict(out)
    assert written.keys() == network.state_dict().keys()  # no wrapper prefix
    assert all(torch.equal(written[k], v) for k, v in network.state_dict().items())
    read_back = spandrel.ModelLoader().load_from_state_dict(written).model.eval()
    x = torch.rand(1, 3, 11, 9)
    with torch.no_grad():
        assert torch.equal(read_back(x), network(x))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pth", "torchscript", "onnx"])
def test_every_export_format_holds_it_and_upscale_reads_the_state_dicts(tmp_path, foreign, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="needs onnxruntime")
    network, path = foreign
    out = tmp_path / f"exported.{fmt}"
    proc = run_script(
        "export.py", f"ckpt={path}", f"out={out}", f"format={fmt}", f"hydra.run.dir={tmp_path}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"verified {fmt}: max abs difference" in proc.stdout
    if fmt == "pth":  # the written state dict is a checkpoint the loader reads like the original
        photo = lr_photo(tmp_path / "photo.png")
        proc = upscale(photo, "-o", tmp_path / "out", "--ckpt", out, "--model", "spandrel")
        assert proc.returncode == 0, proc.stderr[-2000:]
        written = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
        assert np.array_equal(written, as_8_bits(network, photo))


@pytest.mark.parametrize(
    "command,option,file,needles",
    [
        ("upscale", "--ckpt", "notes.txt", ["cannot read checkpoint"]),
        ("upscale", "--ckpt", "zoo:nope", ["'nope' is not in the teacher zoo"]),
        ("upscale", "--model", "spandrel_x", ["not one of srdistill's models", "spandrel"]),
        ("upscale", "--ckpt", "unknown.pth", ["cannot tell its architecture", "spandrel"]),
        ("export", "ckpt", "notes.txt", ["cannot read checkpoint"]),
        ("export", "ckpt", "zoo:nope", ["'nope' is not in the teacher zoo"]),
    ],
)
def test_bad_input_is_one_line_naming_the_file_or_option(tmp_path, command, option, file, needles):
    (tmp_path / "notes.txt").write_text("not weights\n")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "unknown.pth")
    named = file if file.startswith(("zoo:", "spandrel")) else tmp_path / file
    if command == "upscale":
        ckpt = ["--ckpt", tmp_path / "unknown.pth"] if option == "--model" else []
        proc = upscale(lr_photo(tmp_path / "p.png"), "-o", tmp_path / "out", *ckpt, option, named)
    else:
        out = tmp_path / "x.pth"
        proc = run_script(
            "export.py", f"{option}={named}", f"out={out}", f"hydra.run.dir={tmp_path}"
        )
    assert_one_line_error(proc, option, str(named).removeprefix("zoo:"), *needles)
    # upscale makes the output folder before it reads --ckpt: nothing is written into it
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not (tmp_path / "x.pth").exists()


@pytest.mark.slow
def test_a_format_that_cannot_hold_the_architecture_is_one_line_naming_those_that_can(tmp_path):
    pytest.importorskip("onnx", reason="needs onnx")
    from spandrel.architectures.SAFMN import SAFMN

    # SAFMN pools to a size computed from the input: the ONNX exporter refuses it
    torch.save(SAFMN(dim=8, n_blocks=1, upscaling_factor=2).state_dict(), tmp_path / "s.pth")
    out = tmp_path / "s.onnx"
    proc = run_script(
        "export.py", f"ckpt={tmp_path / 's.pth'}", f"out={out}", f"hydra.run.dir={tmp_path}"
    )
    assert_one_line_error(proc, "format=onnx cannot hold SAFMN x2", "format=pth", "safetensors")
    assert not out.exists()
    proc = run_script(  # the format the message names holds it
        "export.py",
        f"ckpt={tmp_path / 's.pth'}",
        f"out={tmp_path / 'exported.pth'}",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
