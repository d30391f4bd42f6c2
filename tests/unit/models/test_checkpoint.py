"""Safe, strict weight loading: wrappers, official key names, derived buffers, clear errors."""

import collections
import re

import pytest
import torch
from safetensors.torch import save_file

from srdistill.models.backbones.edsr import EDSR
from srdistill.models.backbones.rcan import RCAN
from srdistill.models.backbones.span import SPAN
from srdistill.models.backbones.swinir import SwinIR
from srdistill.models.checkpoint import (
    CheckpointError,
    load_weights,
    network_weights_from_run,
    read_state_dict,
)
from srdistill.models.heads.upsample import DIV2K_RGB_MEAN


def tiny_edsr():
    return EDSR(scale=4, num_feat=8, num_block=3)


def same_outputs(a, b):
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"params": sd},
        lambda sd: {"params_ema": sd, "params": {k: torch.zeros_like(v) for k, v in sd.items()}},
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    ],
    ids=["bare", "params", "params_ema_preferred", "state_dict_ddp"],
)
def test_wrappers_are_unwrapped(tmp_path, wrap):
    source, target = tiny_edsr(), tiny_edsr()
    torch.save(wrap(source.state_dict()), tmp_path / "w.pth")
    load_weights(target, tmp_path / "w.pth")
    assert same_outputs(source, target)


def test_safetensors(tmp_path):
    source, target = tiny_edsr(), tiny_edsr()
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    load_weights(target, tmp_path / "w.safetensors")
    assert same_outputs(source, target)


class Payload:
    """Any pickled object other than tensors and plain containers."""


def test_checkpoint_with_code_is_refused(tmp_path):
    torch.save({"params": tiny_edsr().state_dict(), "extra": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*evil.pth"):
        read_state_dict(tmp_path / "evil.pth")


def test_mismatch_is_one_line_naming_model_file_and_keys(tmp_path):
    torch.save(SPAN(scale=4, feature_channels=6).state_dict(), tmp_path / "span6.pth")
    with pytest.raises(CheckpointError) as err:
        load_weights(EDSR(scale=4, num_feat=8, num_block=1), tmp_path / "span6.pth", "edsr_student")
    message = str(err.value)
    assert "\n" not in message
    assert "edsr_student" in message and "span6.pth" in message
    assert re.search(r"missing: conv_first\.weight", message)
    assert re.search(r"unexpected: conv_1\.eval_conv\.weight", message)


def test_shape_mismatch_is_reported(tmp_path):
    torch.save(SPAN(scale=4, feature_channels=6).state_dict(), tmp_path / "w.pth")
    with pytest.raises(
        CheckpointError, match=r"shape: conv_1\.eval_conv\.weight \(6, 3, 3, 3\)!=\(8"
    ):
        load_weights(SPAN(scale=4, feature_channels=8), tmp_path / "w.pth")


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_state_dict(tmp_path / "junk.pth")
    torch.save({"epoch": 3}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointError, match="holds no state dict"):
        read_state_dict(tmp_path / "meta.pth")


def mean_convs(sign):
    bias = sign * 255.0 * torch.tensor(DIV2K_RGB_MEAN)
    return torch.eye(3).view(3, 3, 1, 1), bias


def to_official_edsr(state, num_block):
    """Hand-written inverse of the documented EDSR-PyTorch -> BasicSR map."""
    out = collections.OrderedDict()
    for key, value in state.items():
        key = key.replace("conv_first.", "head.0.").replace("conv_last.", "tail.1.")
        key = key.replace("conv_after_body.", f"body.{num_block}.")
        key = re.sub(r"^upsample\.(\d+)\.", r"tail.0.\1.", key)
        key = re.sub(r"^body\.(\d+)\.conv1\.", r"body.\1.body.0.", key)
        key = re.sub(r"^body\.(\d+)\.conv2\.", r"body.\1.body.2.", key)
        out[key] = value
    out["sub_mean.weight"], out["sub_mean.bias"] = mean_convs(-1)
    out["add_mean.weight"], out["add_mean.bias"] = mean_convs(+1)
    return out


def to_official_rcan(state, num_group, num_block):
    out = collections.OrderedDict()
    for key, value in state.items():
        key = key.replace("conv_first.", "head.0.").replace("conv_last.", "tail.1.")
        key = key.replace("conv_after_body.", f"body.{num_group}.")
        key = re.sub(r"^upsample\.(\d+)\.", r"tail.0.\1.", key)
        key = key.replace("rcab.3.attention.1.", "rcab.3.conv_du.0.")
        key = key.replace("rcab.3.attention.3.", "rcab.3.conv_du.2.")
        key = re.sub(r"^body\.(\d+)\.residual_group\.(\d+)\.rcab\.", r"body.\1.body.\2.body.", key)
        key = re.sub(r"^body\.(\d+)\.conv\.", rf"body.\1.body.{num_block}.", key)
        out[key] = value
    out["sub_mean.weight"], out["sub_mean.bias"] = mean_convs(-1)
    out["add_mean.weight"], out["add_mean.bias"] = mean_convs(+1)
    return out


def test_official_edsr_names_load(tmp_path):
    source = tiny_edsr()
    official = to_official_edsr(source.state_dict(), num_block=3)
    assert "body.3.weight" in official and "tail.0.2.weight" in official
    torch.save(official, tmp_path / "edsr_official.pt")
    target = load_weights(tiny_edsr(), tmp_path / "edsr_official.pt")
    assert same_outputs(source, target)


def test_official_rcan_names_load(tmp_path):
    def make():
        return RCAN(scale=2, num_feat=16, num_group=2, num_block=3, squeeze_factor=4)

    source = make()
    official = to_official_rcan(source.state_dict(), num_group=2, num_block=3)
    assert "body.1.body.3.weight" in official and "body.0.body.2.body.3.conv_du.2.bias" in official
    torch.save(official, tmp_path / "rcan_official.pt")
    assert same_outputs(source, load_weights(make(), tmp_path / "rcan_official.pt"))


def test_unusual_mean_shift_is_refused(tmp_path):
    official = to_official_edsr(tiny_edsr().state_dict(), num_block=3)
    official["sub_mean.bias"] = official["sub_mean.bias"] * 0.5
    torch.save(official, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="sub_mean is not the standard"):
        load_weights(tiny_edsr(), tmp_path / "odd.pt")


def test_swinir_masks_from_another_img_size_are_recomputed(tmp_path):
    def make(img_size):
        return SwinIR(
            scale=2, embed_dim=12, depths=(2,), num_heads=(2,), window_size=4, img_size=img_size
        )

    source = make(24)
    torch.save({"params": source.state_dict()}, tmp_path / "swin.pth")
    target = load_weights(make(16), tmp_path / "swin.pth")
    assert same_outputs(source, target)


def test_training_form_span_checkpoint_with_eval_conv_copies(tmp_path):
    source = SPAN(scale=4, feature_channels=6, reparameterized=False)
    state = dict(source.state_dict())
    state["conv_1.eval_conv.weight"] = torch.zeros(6, 3, 3, 3)  # as the official trainer saves
    torch.save(state, tmp_path / "train_form.pth")
    target = load_weights(
        SPAN(scale=4, feature_channels=6, reparameterized=False), tmp_path / "train_form.pth"
    )
    assert same_outputs(source, target)


def test_student_weights_come_from_a_run_checkpoint(tmp_path):
    state = {
        "student.w": torch.ones(1),
        "student_ema.module.w": torch.zeros(1),
        "discriminator.x": torch.ones(2),
    }
    torch.save({"state_dict": state}, tmp_path / "run.ckpt")
    assert network_weights_from_run(tmp_path / "run.ckpt")["w"].item() == 0.0
    assert network_weights_from_run(tmp_path / "run.ckpt", use_ema=False)["w"].item() == 1.0
    torch.save({"params": {}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a srdistill training checkpoint"):
        network_weights_from_run(tmp_path / "other.pth")


def test_a_zip_that_unpacks_to_far_more_than_it_holds_is_refused_before_loading(tmp_path):
    import zipfile

    plain = tmp_path / "plain.pth"
    torch.save({"w": torch.zeros(64, 1024)}, plain)  # 256 KiB of zeros, stored as they are
    assert read_state_dict(plain)["w"].shape == (64, 1024)
    crafted = tmp_path / "crafted.pth"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(crafted, "w") as packed:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("/data/0"):
                data = bytes(200 << 20)  # 200 MiB of zeros deflate to about 200 KiB
            packed.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    assert crafted.stat().st_size < 1 << 20
    with pytest.raises(CheckpointError, match=r"unpack to 209,7\d\d,\d\d\d bytes from a"):
        read_state_dict(crafted, "teacher.ckpt")


def test_a_fifo_or_a_folder_is_named_for_what_it_is_and_never_opened(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.pth")  # opening it for reading would block
    (tmp_path / "folder.pth").mkdir()
    for name in ("fifo.pth", "folder.pth"):
        with pytest.raises(CheckpointError, match="is not a regular file"):
            read_state_dict(tmp_path / name, "ckpt")
