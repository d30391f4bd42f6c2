from pathlib import Path
from types import SimpleNamespace
from unittest.mock import MagicMock

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import OmegaConf
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from srdistill.training.callbacks import SampleStrips
from srdistill.training.strip_images import GAP, HEADER_HEIGHT

CONF = Path(__file__).parents[3] / "conf" / "callbacks" / "default.yaml"
SCALE = 2


class Brightness(nn.Module):
    """x2 nearest upscaling plus a learnable offset: its panel changes as ``offset`` does."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = nn.Parameter(torch.tensor(offset))

    def forward(self, x):
        return nn.functional.interpolate(x, scale_factor=SCALE, mode="nearest") + self.offset


def validation_set() -> list[dict]:
    """Two 16x20 HR images, flat but for an 8x8 noise square at a different place in each."""
    images, noise = [], torch.Generator().manual_seed(0)
    for top, left in ((0, 12), (8, 0)):
        gt = torch.full((3, 16, 20), 0.5)
        gt[:, top : top + 8, left : left + 8] = torch.rand(3, 8, 8, generator=noise)
        lq = nn.functional.avg_pool2d(gt[None], SCALE)[0]
        images.append({"lq": lq, "gt": gt, "name": f"{top}_{left}", "gray": False})
    return images


def fake_run(tmp_path, teacher: nn.Module | None, loggers=()):
    datamodule = SimpleNamespace(val_dataloader=lambda: [DataLoader(validation_set())])
    trainer = SimpleNamespace(
        datamodule=datamodule,
        is_global_zero=True,
        global_step=0,
        max_steps=6,
        default_root_dir=str(tmp_path),
        loggers=list(loggers),
    )
    student = Brightness(0.0)
    module = SimpleNamespace(
        teacher=teacher,
        teacher_forward=lambda lq: (teacher(lq), {}),
        eval_student=student,
        export_student=lambda: Brightness(student.offset.item() + 0.25),
        device=torch.device("cpu"),
    )
    return trainer, module


def train(callback: SampleStrips, trainer, module, steps: int) -> None:
    callback.on_train_start(trainer, module)
    for step in range(1, steps + 1):
        trainer.global_step = step
        with torch.no_grad():
            module.eval_student.offset += 0.1  # the student learns
        callback.on_train_batch_end(trainer, module, None, None, step - 1)
    callback.on_train_end(trainer, module)


def strips(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted((folder / "samples").iterdir())}


def columns(strip: np.ndarray, count: int) -> list[np.ndarray]:
    width = (strip.shape[1] + GAP) // count - GAP
    return [
        strip[HEADER_HEIGHT:, i * (width + GAP) : i * (width + GAP) + width] for i in range(count)
    ]


def test_strips_show_the_same_squares_and_the_deployed_student_last(tmp_path):
    callback = SampleStrips(every_n_steps=2, crop_size=8, panel_size=16, margin=1)
    trainer, module = fake_run(tmp_path, teacher=Brightness(-0.25))
    train(callback, trainer, module, steps=6)
    written = strips(tmp_path)
    # step 6 is the last: its strip is the deployed student's
    assert list(written) == ["step_0000002.png", "step_0000004.png", "step_0000006_deployed.png"]
    first, second, deployed = (columns(s, 5) for s in written.values())
    for fixed in (0, 1, 2, 4):  # LR, bicubic, teacher, HR: the same squares every time
        assert np.array_equal(first[fixed], second[fixed])
        assert np.array_equal(first[fixed], deployed[fixed])
    assert not np.array_equal(first[3], second[3])  # the student's panel moves
    # rows: each image's noise square, 8 HR pixels nearest-upsampled x2
    hr = first[4]
    assert hr.shape[:2] == (2 * 16 + GAP, 16)
    for row, (top, left) in enumerate(((0, 12), (8, 0))):
        expected = validation_set()[row]["gt"][:, top : top + 8, left : left + 8]
        expected = (expected * 255).round().byte().permute(1, 2, 0).numpy()
        start = row * (16 + GAP)
        assert np.array_equal(hr[start : start + 16 : 2, ::2], expected)


def test_without_a_teacher_the_strip_has_four_panels(tmp_path):
    callback = SampleStrips(every_n_steps=2, crop_size=8, panel_size=16, margin=1)
    trainer, module = fake_run(tmp_path, teacher=None)
    train(callback, trainer, module, steps=2)
    written = strips(tmp_path)
    assert list(written) == ["step_0000002.png", "step_0000002_deployed.png"]  # stopped early
    assert all(strip.shape[1] == 4 * 16 + 3 * GAP for strip in written.values())


def test_wandb_gets_the_same_strip_captioned_with_its_labels(tmp_path):
    wandb = MagicMock(spec=WandbLogger)
    callback = SampleStrips(every_n_steps=2, crop_size=8, panel_size=16, margin=1)
    trainer, module = fake_run(tmp_path, teacher=Brightness(0.0), loggers=[wandb])
    train(callback, trainer, module, steps=3)
    (periodic, final) = wandb.log_image.call_args_list
    assert periodic.args[0] == "train/samples" and periodic.kwargs["step"] == 2
    np.testing.assert_array_equal(periodic.args[1][0], strips(tmp_path)["step_0000002.png"])
    labels = "LR (nearest) | bicubic | teacher | {} | HR"
    assert periodic.kwargs["caption"] == [labels.format("student, step 2")]
    assert final.kwargs["caption"] == [labels.format("deployed student, step 3")]


def test_the_config_maps_to_the_constructor():
    node = OmegaConf.load(CONF).samples
    callback = instantiate(node, every_n_steps=7)
    assert (callback.every_n_steps, callback.images, callback.crop_size) == (7, 2, 128)
    assert (callback.panel_size, callback.margin) == (256, 8)


@pytest.mark.parametrize("option", ["every_n_steps", "crop_size", "images", "panel_size"])
def test_a_count_below_one_names_its_option(option):
    message = rf"^callbacks\.samples\.{option}=0: give an integer >= 1$"
    with pytest.raises(ValueError, match=message):
        SampleStrips(**{option: 0})


class DrawsRandom(Brightness):
    """A network whose forward draws from the global generator (as dropout would)."""

    def forward(self, x):
        torch.rand(1)
        return super().forward(x)


def test_strips_leave_the_runs_random_draws_as_they_were(tmp_path):
    # a resumed run restores its generators before on_train_start: a strip that drew from them
    # would make the resumed run differ from the uninterrupted one
    trainer, module = fake_run(tmp_path, DrawsRandom(0.0))
    module.eval_student = DrawsRandom(0.0)
    callback = SampleStrips(every_n_steps=1)
    before = torch.get_rng_state()
    callback.on_train_start(trainer, module)
    trainer.global_step = 1
    callback.on_train_batch_end(trainer, module, None, None, 0)
    assert (tmp_path / "samples" / "step_0000001.png").exists()
    assert torch.equal(torch.get_rng_state(), before)
