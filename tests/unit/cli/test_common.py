"""What every entry point shares: a user error is one line, wherever it was raised."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from srdistill.cli.common import exit_on_user_error, user_message


class BrokenDataset(Dataset):
    """Reading item 1 fails the way a damaged training file does."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == 1:
            raise ValueError("teacher cache entry /data/cache/0001.pt is truncated\ndelete it")
        return torch.zeros(1)


@exit_on_user_error
def read_all(workers: int) -> None:
    for _ in DataLoader(BrokenDataset(), batch_size=1, num_workers=workers):
        pass


@pytest.mark.parametrize("workers", [0, 1])
def test_an_error_in_a_data_loader_worker_is_its_own_message_on_one_line(workers, capsys):
    with pytest.raises(SystemExit) as exit_info:
        read_all(workers)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: teacher cache entry /data/cache/0001.pt is truncated; delete it\n"


def test_the_last_exception_of_a_chained_worker_traceback_is_kept():
    text = (
        "Caught OSError in DataLoader worker process 3.\n"
        "Original Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "    raise KeyError('a: b')\n"
        "KeyError: 'a: b'\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n"
        '  File "y.py", line 2, in g\n'
        "srdistill.models.checkpoint.CheckpointError: cannot read /d/x.pt: it is empty\n"
    )
    assert user_message(OSError(text)) == "cannot read /d/x.pt: it is empty"


def test_an_ordinary_message_is_only_joined_onto_one_line():
    assert user_message(ValueError("first line.\n  second")) == "first line; second"


TINY_EDSR = {"_target_": "srdistill.models.backbones.edsr.EDSR", "scale": 2, "num_feat": 16}
TINY_RECORD = {
    "model": "edsr_tiny_student",
    "model_args": {"scale": 2, "num_feat": 16, "num_block": 2},
    "lora": None,
    "average_weight": None,
}


def test_a_teacher_ckpt_that_is_a_run_gives_its_deployed_student_in_the_configured_network(
    tmp_path,
):
    from omegaconf import OmegaConf

    from srdistill.cli.common import build_model
    from srdistill.models.backbones.edsr import EDSR

    student = EDSR(scale=2, num_feat=16, num_block=2).eval()
    run = {
        "state_dict": {f"student.{k}": v for k, v in student.state_dict().items()},
        "student_build": TINY_RECORD,
    }
    torch.save(run, tmp_path / "last.ckpt")
    config = OmegaConf.create({**TINY_EDSR, "num_block": 2})
    teacher = build_model(config, str(tmp_path / "last.ckpt"), "teacher t", "teacher.ckpt")
    assert isinstance(teacher, EDSR) and teacher.training  # the mode the config built it in
    x = torch.rand(1, 3, 8, 6)
    with torch.no_grad():
        assert torch.equal(teacher.eval()(x), student(x))
    with pytest.raises(Exception, match=r"teacher.ckpt=.*last\.ckpt does not fit model teacher t"):
        build_model(
            OmegaConf.create({**TINY_EDSR, "num_block": 1}),
            str(tmp_path / "last.ckpt"),
            "teacher t",
            "teacher.ckpt",
        )


def test_model_spandrel_builds_the_network_its_file_holds(tmp_path):
    spandrel = pytest.importorskip("spandrel")
    from omegaconf import OmegaConf

    from srdistill.cli.common import build_model

    network = spandrel.architectures.Compact.Compact(num_feat=8, num_conv=2, upscale=2).eval()
    torch.save(network.state_dict(), tmp_path / "c.pth")
    config = OmegaConf.create(
        {"_target_": "srdistill.models.spandrel_net.SpandrelModel", "scale": 2}
    )
    teacher = build_model(config, str(tmp_path / "c.pth"), "teacher spandrel", "teacher.ckpt")
    assert teacher.architecture == "Compact"
    x = torch.rand(1, 3, 8, 6)
    with torch.no_grad():
        assert torch.equal(teacher(x), network(x))
