"""A DSCLoRA run with lora=lora ships what its config says: every adapted conv of the exported
SPAN-Tiny differs from the pre-trained one by an update of rank r*k (its configured rank r,
kernel size k) in the ConvLoRA view, and every other tensor is the pre-trained one."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from srdistill.data.samples import VAL_SET
from srdistill.lora.inject import LoRASpec
from srdistill.lora.spectrum import update_rank
from srdistill.models.backbones.span import span_ch26, span_ch28
from srdistill.models.checkpoint import read_state_dict
from tests.helpers.cli import export_last_checkpoint
from tests.helpers.configs import CONF_DIR
from tests.helpers.training import train


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[dict, dict]:
    """Pre-trained and exported weights of a 3-step lora=lora run from random SPAN weights."""
    root = tmp_path_factory.mktemp("dsclora_rank")
    torch.manual_seed(0)
    torch.save(span_ch26().state_dict(), root / "student.pth")
    torch.save(span_ch28().state_dict(), root / "teacher.pth")
    train(
        root / "run",
        "experiment=dsclora",
        "lora=lora",
        "trainer=cpu",
        "data=samples",
        "val.root=null",
        f"val.sets=[{VAL_SET}]",
        f"student.ckpt={root / 'student.pth'}",
        f"teacher.ckpt={root / 'teacher.pth'}",
        "stages=null",
        "data.lr_patch_size=16",
        "batch_size=2",
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
        "num_workers=0",
        "optimizer.lr=1e-2",  # large enough that 3 steps move every adapter well above round-off
        "module.ema_decay=0.5",
        "module.average_weight=0.5",
        "final_table=false",
    )
    out = root / "exported.pth"
    export_last_checkpoint(root / "run", out)
    return read_state_dict(root / "student.pth"), read_state_dict(out)


def configured_spec() -> LoRASpec:
    targets = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "lora" / "lora.yaml"))
    return LoRASpec(targets["targets"])


@pytest.mark.slow
def test_every_adapted_conv_changes_by_rank_r_times_k(exported):
    pretrained, shipped = exported
    spec = configured_spec()
    adapted = 0
    for key, before in pretrained.items():
        module, _, leaf = key.rpartition(".")
        rank_alpha = spec.match(module)
        if leaf != "weight" or rank_alpha is None:
            assert torch.equal(shipped[key], before), f"{key} is not adapted but changed"
            continue
        adapted += 1
        gap = update_rank(shipped[key].double() - before.double())
        expected = rank_alpha["rank"] * before.shape[-1]
        assert gap is not None and gap.rank == expected, (key, gap, expected)
        assert gap.ratio > 100, (key, gap)  # a real drop to float32 round-off, not noise
    assert adapted == 18 + 2  # every SPAB conv, conv_2 and upsampler.0
