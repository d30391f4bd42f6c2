"""model=spandrel: a network of an architecture srdistill does not implement, read from its file."""

import pytest
import torch

from srdistill.models.checkpoint import CheckpointError
from srdistill.models.spandrel_net import SpandrelModel, SpandrelNetwork

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
