import pytest
import torch

from srdistill.models.checkpoint import CheckpointError, network_weights_from_run
from srdistill.models.pretrained import sample_teacher, sample_teacher_path


def test_sample_teacher_ships_in_the_package_and_loads():
    assert sample_teacher_path().is_file()
    model = sample_teacher(4)
    assert model.scale == 4 and sum(p.numel() for p in model.parameters()) > 300_000
    with pytest.raises(ValueError, match="x4 only"):
        sample_teacher(2)


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
