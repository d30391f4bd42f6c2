"""Every export format holds the network it was written from (parity on real and random input)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from safetensors import safe_open

from srdistill.export_formats import export_format, format_for, verify_export, write_export
from srdistill.models.detect import config_args
from srdistill.models.registry import build_from_record

ARCH = ("edsr_tiny_student", config_args("edsr_tiny_student", 2))
needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None,
    reason="needs onnx and onnxruntime (pip install onnx onnxruntime)",
)


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return build_from_record(*ARCH, None).eval()


def test_slim_is_the_pth_format():
    assert export_format("slim") == "pth"
    with pytest.raises(ValueError, match="format=h5: choose one of pth, safetensors"):
        export_format("h5")


@pytest.mark.parametrize(
    "fmt", ["pth", "safetensors", "torchscript", pytest.param("onnx", marks=needs_onnx)]
)
def test_the_written_file_computes_what_the_network_does(network, tmp_path, fmt):
    path = write_export(network, tmp_path / f"student.{fmt}", fmt, ARCH)
    diff, image = verify_export(network, path, fmt, scale=2, architecture=ARCH)
    assert image.startswith("chelsea")
    assert diff <= (0.0 if fmt in ("pth", "safetensors") else 1e-5)


def test_state_dict_formats_hold_the_exact_tensors(network, tmp_path):
    pth = write_export(network, tmp_path / "s.pth", "pth", ARCH)
    loaded = torch.load(pth, weights_only=True)
    assert loaded.keys() == network.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in network.state_dict().items())
    st = write_export(network, tmp_path / "s.safetensors", "safetensors", ARCH)
    with safe_open(str(st), "pt") as f:
        assert f.metadata()["srdistill_model"] == "edsr_tiny_student"
        assert torch.equal(f.get_tensor("conv_last.bias"), network.conv_last.bias)


def test_torchscript_runs_at_another_size_than_it_was_traced_at(network, tmp_path):
    path = write_export(network, tmp_path / "s.pt", "torchscript")
    loaded = torch.jit.load(str(path))
    x = torch.rand(1, 3, 13, 7)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), network(x))


@needs_onnx
def test_onnx_runs_in_onnxruntime_at_two_input_sizes(network, tmp_path):
    import onnxruntime

    path = write_export(network, tmp_path / "s.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for height, width in ((10, 14), (17, 9)):
        x = torch.rand(1, 3, height, width)
        (out,) = session.run(None, {"lr": x.numpy()})
        assert out.shape == (1, 3, 2 * height, 2 * width)
        with torch.no_grad():
            np.testing.assert_allclose(out, network(x).numpy(), atol=1e-5)


def test_a_file_that_does_not_match_fails_verification(network, tmp_path):
    path = write_export(network, tmp_path / "s.pth", "pth", ARCH)
    torch.manual_seed(1)
    other = build_from_record(*ARCH, None).eval()  # other random weights
    with pytest.raises(ValueError, match="verification failed: pth file .* differs"):
        verify_export(other, path, "pth", scale=2, architecture=ARCH)


@pytest.mark.parametrize(
    ("fmt", "out", "expected"),
    [
        (None, "student.safetensors", "safetensors"),
        (None, "student.ONNX", "onnx"),
        (None, "student.pth", "pth"),
        (None, "student.bin", "pth"),  # an ending that says nothing: the plain state dict
        (None, "exports/.onnx", "onnx"),  # a name that is only an ending
        ("torchscript", "student.pt", "torchscript"),
        ("slim", "student.pth", "pth"),
    ],
)
def test_the_format_is_the_one_given_or_the_one_the_file_name_says(fmt, out, expected):
    assert format_for(fmt, out) == expected


@pytest.mark.parametrize(
    ("fmt", "out"), [("pth", "s.safetensors"), ("onnx", "s.pth"), ("slim", "s.safetensors")]
)
def test_a_format_contradicting_the_file_name_is_refused(fmt, out):
    with pytest.raises(ValueError, match=f"format={fmt} but out={out}"):
        format_for(fmt, out)
