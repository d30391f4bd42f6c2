"""model=spandrel: a network of an architecture srdistill does not implement, read from its file."""

import pytest
import torch

from srdistill.models.checkpoint import CheckpointError
from srdistill.models.spandrel_net import SpandrelModel, SpandrelNetwork
from srdistill.models.taps import check_taps, forward_replacing, forward_with_taps

spandrel = pytest.importorskip("spandrel")


def compact(scale: int = 2):
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    return Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale).eval()


def test_the_file_builds_its_architecture_with_its_weights(tmp_path):
    original = compact()
    torch.save({"params": original.state_dict()}, tmp_path / "c.pth")  # wrappers unwrapped
    network = SpandrelModel(scale=2).build(tmp_path / "c.pth", "teacher.ckpt")
    assert network.architecture == "Compact" and not network.training
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(network(x), original(x))


def test_padding_meets_the_size_rule_and_the_output_is_cropped_back():
    network = SpandrelNetwork(compact(), 2, minimum=16, multiple_of=8)
    assert network.padding(13, 10) == (3, 6)
    x = torch.rand(2, 3, 13, 10)
    with torch.no_grad():
        out, plain = network(x), network.model(x)
    assert out.shape == (2, 3, 26, 20)
    # four 3x3 convs see 4 LR pixels: away from the padded bottom/right edges nothing changes
    assert torch.allclose(out[..., : 2 * 9, : 2 * 6], plain[..., : 2 * 9, : 2 * 6], atol=1e-6)


def test_taps_are_the_architectures_module_paths_cropped_to_the_input():
    network = SpandrelNetwork(compact(), 2, minimum=16, multiple_of=8)
    x = torch.rand(1, 3, 13, 10)
    with torch.no_grad():
        out, feats = forward_with_taps(network, x, ["body.0", "body.2", "upsampler"])
        padded = torch.nn.functional.pad(x, (0, 6, 0, 3), mode="reflect")
        conv = network.model.body[0](padded)
        assert torch.equal(out, network(x))
    # LR features of the padded 16 x 16 input are cropped to 13 x 10; the HR one is not
    assert torch.equal(feats["body.0"], conv[..., :13, :10])
    assert feats["body.2"].shape == (1, 8, 13, 10)
    assert feats["upsampler"].shape == (1, 3, 32, 32)
    check_taps(network, ["body.0"], "teacher")
    with pytest.raises(
        ValueError,
        match=r"\['model.body.0'\], which SRVGGNetCompact .* paths: body, upsampler, body.0",
    ):
        check_taps(network, ["model.body.0"], "teacher")


def test_a_replacement_is_pasted_over_the_padded_feature_and_gets_gradients():
    network = SpandrelNetwork(compact(), 2, minimum=16, multiple_of=8)
    x = torch.rand(1, 3, 13, 10)
    with torch.no_grad():
        out, feats = forward_with_taps(network, x, ["body.2"])
        assert torch.equal(forward_replacing(network, x, "body.2", feats["body.2"]), out)
    feature = torch.randn(1, 8, 13, 10, requires_grad=True)
    changed = forward_replacing(network, x, "body.2", feature)
    assert changed.shape == out.shape and not torch.allclose(changed, out)
    changed.sum().backward()
    assert feature.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"tap 'body.2' has shape \(1, 8, 16, 16\), .* 13, 10"):
        forward_replacing(network, x, "body.2", torch.zeros(1, 8, 16, 16))


def test_another_scale_is_refused_naming_the_right_one(tmp_path):
    torch.save(compact(2).state_dict(), tmp_path / "c.pth")
    with pytest.raises(ValueError, match="x2 .*scale=2"):
        SpandrelModel(scale=4).build(tmp_path / "c.pth", "ckpt")


def test_a_file_spandrel_does_not_recognise_is_refused(tmp_path):
    torch.save({"some.weight": torch.zeros(3, 3)}, tmp_path / "u.pth")
    with pytest.raises(CheckpointError, match="does not recognise"):
        SpandrelModel(scale=2).build(tmp_path / "u.pth", "ckpt")


def test_without_spandrel_the_error_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    torch.save(compact().state_dict(), tmp_path / "c.pth")
    real_import = builtins.__import__

    def no_spandrel(name, *args, **kwargs):
        if name == "spandrel":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_spandrel)
    with pytest.raises(ValueError, match=r"srdistill\[spandrel\]"):
        SpandrelModel(scale=2).build(tmp_path / "c.pth", "ckpt")


def span_state(channels: int) -> dict:
    from spandrel.architectures.SPAN import SPAN

    torch.manual_seed(0)
    return SPAN(num_in_ch=3, num_out_ch=3, feature_channels=channels, upscale=2).state_dict()


PEAK_GROWTH = """
import resource, sys
from srdistill.models.spandrel_net import SpandrelModel
import spandrel
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    SpandrelModel(scale=2).build(sys.argv[1], "ckpt")
except Exception as err:
    print(type(err).__name__, err)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, "MiB")
"""


def test_a_file_declaring_more_channels_than_it_holds_is_refused_before_allocating(tmp_path):
    import subprocess
    import sys

    state = span_state(4)
    # a 4.6 KB tensor declaring 384 channels: spandrel would size a 0.5 GB SPAN from it
    state["conv_1.sk.weight"] = torch.zeros(384, 3, 1, 1)
    torch.save(state, tmp_path / "crafted.pth")
    # a process of its own: peak memory (ru_maxrss) only ever grows in this one
    done = subprocess.run(
        [sys.executable, "-c", PEAK_GROWTH, str(tmp_path / "crafted.pth")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    error, growth = done.stdout.strip().splitlines()
    assert error.startswith("CheckpointError") and "cannot load it" in error, done.stderr[-2000:]
    assert int(growth.split()[0]) < 64, growth


def test_tensors_expanded_from_a_few_stored_values_are_refused(tmp_path):
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in span_state(160).items()}
    # torch.save stores one value per tensor; the shapes declare 94 MiB
    torch.save({k: torch.zeros(1).expand(s) for k, s in shapes.items()}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match=r"x\.pth: its tensors declare 94 MiB from a \d+ KiB"):
        SpandrelModel(scale=2).build(tmp_path / "x.pth", "ckpt")
