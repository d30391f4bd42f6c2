"""The one loader: srdistill's architectures, run checkpoints, zoo entries and any checkpoint
spandrel recognises, each giving the network that computes what the saved one did."""

import hashlib

import pytest
import torch
from torch import nn

from srdistill.models import load, zoo
from srdistill.models.backbones.edsr import EDSR
from srdistill.models.checkpoint import CheckpointError
from srdistill.models.load import SPANDREL, check_model_name, load_network

spandrel = pytest.importorskip("spandrel")


def compact(scale: int = 2) -> nn.Module:
    """Real-ESRGAN's SRVGGNetCompact, tiny and random: an architecture srdistill does not
    implement."""
    from spandrel.architectures.Compact import Compact

    return Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale).eval()


def tiny_edsr() -> EDSR:
    """``edsr_tiny_student`` at x2."""
    return EDSR(scale=2, num_feat=16, num_block=2).eval()


def same_output(a: nn.Module, b: nn.Module, h: int = 9, w: int = 7) -> bool:
    x = torch.rand(1, 3, h, w)
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def run_checkpoint(network: nn.Module, record: dict) -> dict:
    """What train.py saves, reduced to what the deployed student is rebuilt from."""
    state = {f"student.{k}": v for k, v in network.state_dict().items()}
    return {"state_dict": state, "global_step": 4, "loops": {}, "student_build": record}


TINY_RECORD = {
    "model": "edsr_tiny_student",
    "model_args": {"scale": 2, "num_feat": 16, "num_block": 2},
    "lora": None,
    "average_weight": None,
}


def test_a_checkpoint_only_spandrel_knows_loads_as_the_network_that_saved_it(tmp_path):
    original = compact()
    torch.save({"params_ema": original.state_dict()}, tmp_path / "4x-Compact.pth")
    loaded = load_network(tmp_path / "4x-Compact.pth")
    assert (loaded.name, loaded.scale, loaded.architecture) == ("Compact", 2, None)
    assert "spandrel" in loaded.description and not loaded.network.training
    assert same_output(loaded.network, original)
    named = load_network(tmp_path / "4x-Compact.pth", SPANDREL, scale=2)
    assert same_output(named.network, original)


def test_srdistill_weights_and_runs_load_as_before(tmp_path):
    network = tiny_edsr()
    torch.save(network.state_dict(), tmp_path / "w.pth")
    torch.save(run_checkpoint(network, TINY_RECORD), tmp_path / "last.ckpt")
    from_weights = load_network(tmp_path / "w.pth")
    assert from_weights.architecture == ("edsr_tiny_student", TINY_RECORD["model_args"])
    assert from_weights.description.startswith("edsr_tiny_student x2")
    from_run = load_network(tmp_path / "last.ckpt")
    assert "deployed student of a train.py run" in from_run.description
    for loaded in (from_weights, from_run):
        assert loaded.scale == 2 and same_output(loaded.network, network)


def test_into_loads_a_file_or_a_runs_deployed_student_into_the_callers_network(tmp_path):
    network = tiny_edsr()
    torch.save({"params": network.state_dict()}, tmp_path / "w.pth")
    torch.save(run_checkpoint(network, TINY_RECORD), tmp_path / "last.ckpt")
    for file in ("w.pth", "last.ckpt"):
        target = EDSR(scale=2, num_feat=16, num_block=2)
        loaded = load_network(tmp_path / file, into=target, name="teacher t", option="teacher.ckpt")
        assert loaded.network is target and loaded.name == "teacher t"
        assert same_output(target, network), file
    with pytest.raises(CheckpointError, match=r"teacher.ckpt=.*w\.pth does not fit model t"):
        load_network(tmp_path / "w.pth", into=EDSR(2, num_feat=8), name="t", option="teacher.ckpt")


def test_a_spandrel_file_at_another_scale_is_refused_naming_the_right_one(tmp_path):
    torch.save(compact(2).state_dict(), tmp_path / "c.pth")
    with pytest.raises(
        ValueError, match=r"--ckpt=.*c\.pth holds a x2 .*Compact network, not x4; .*scale=2"
    ):
        load_network(tmp_path / "c.pth", scale=4, option="--ckpt")


@pytest.mark.parametrize(
    "content,says",
    [
        (b"a text file, not weights\n", "cannot read checkpoint"),
        ({"weight": torch.zeros(2)}, "cannot tell its architecture"),
    ],
    ids=["not a checkpoint", "no architecture fits"],
)
def test_a_file_nothing_reads_is_one_line_naming_the_option_and_file(tmp_path, content, says):
    path = tmp_path / "odd.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError) as err:
        load_network(path, option="--ckpt")
    message = str(err.value)
    assert "\n" not in message and f"--ckpt={path}" in message and says in message


def test_without_spandrel_a_foreign_file_says_how_to_install_it(tmp_path, monkeypatch):
    torch.save(compact().state_dict(), tmp_path / "c.pth")
    monkeypatch.setattr(load, "spandrel_installed", lambda: False)
    with pytest.raises(CheckpointError, match=r"c\.pth: cannot tell .*srdistill\[spandrel\]"):
        load_network(tmp_path / "c.pth")


def test_model_names_are_srdistills_or_spandrel():
    check_model_name(SPANDREL)
    check_model_name("span_ch26")
    with pytest.raises(ValueError, match="--model=span_ch99 is not one of srdistill's models"):
        check_model_name("span_ch99", "--model")


def cached_entry(hub, network: nn.Module, sha256: str | None) -> str:
    """An entry of ``network`` (edsr_tiny_teacher at x2) already in the hub cache; its hash."""
    entry = zoo.ZooEntry("tiny_x2", "edsr_tiny_teacher", {"scale": 2}, 2, "tiny.pt", "a test")
    path = zoo.hub_file(entry)
    path.parent.mkdir(parents=True)
    torch.save(network.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    hub["tiny_x2"] = zoo.ZooEntry(**{**entry.__dict__, "sha256": sha256 or None})
    return digest


def test_a_zoo_entry_loads_its_verified_file(hub):
    teacher = EDSR(scale=2, num_feat=32, num_block=4).eval()
    digest = cached_entry(hub, teacher, None)
    hub["tiny_x2"] = zoo.ZooEntry(**{**hub["tiny_x2"].__dict__, "sha256": digest})
    loaded = load_network("zoo:tiny_x2")
    assert loaded.name == "edsr_tiny_teacher" and "teacher zoo entry tiny_x2" in loaded.description
    assert same_output(loaded.network, teacher)
    with pytest.raises(ValueError, match="zoo:tiny_x2 is a edsr_tiny_teacher network, not span"):
        load_network("zoo:tiny_x2", "span_ch26")


def test_a_zoo_entry_without_checksum_says_which_flag_pins_it(hub):
    digest = cached_entry(hub, EDSR(scale=2, num_feat=32, num_block=4), None)
    with pytest.raises(zoo.ZooError, match=f"--sha256={digest}"):
        load_network("zoo:tiny_x2", option="--ckpt")
    assert load_network("zoo:tiny_x2", option="--ckpt", sha256=digest).scale == 2


def test_an_unknown_zoo_name_is_one_line_naming_the_option(hub):
    with pytest.raises(zoo.ZooError, match="--ckpt: 'nope' is not in the teacher zoo"):
        load_network("zoo:nope", option="--ckpt")


def test_diverged_weights_are_refused_naming_the_file(tmp_path):
    network = tiny_edsr()
    with torch.no_grad():
        network.conv_last.bias.fill_(float("nan"))
    torch.save(network.state_dict(), tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"ckpt=.*w\.pth hold non-finite .*conv_last\.bias"):
        load_network(tmp_path / "w.pth")
