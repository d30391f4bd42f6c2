"""The feature-KD losses on every backbone pair's configured taps (one small forward each)."""

import pytest
import torch
from hydra.utils import instantiate

from srdistill.cli.builders import build_loss
from srdistill.losses.context import StepContext
from tests.helpers.configs import compose_config

FEATURE_TERMS = {"fitnet": "fit", "at": "at", "rkd": "rkd", "fakd": "sa"}


# the sample teacher is x4 only; the others are built at x2 to keep the forward small
@pytest.mark.parametrize(
    ("backbone", "scale"),
    [("tiny", 2), ("sample", 4), ("edsr", 2), ("rcan", 2), ("swinir", 2), ("span", 2)],
)
def test_every_feature_loss_runs_on_the_pair_taps(backbone, scale):
    torch.manual_seed(0)
    cfg = compose_config("train", [f"backbone={backbone}", f"scale={scale}"])
    student, teacher = instantiate(cfg.student.arch), instantiate(cfg.teacher.arch).eval()
    taps = cfg.kd_taps
    lq = torch.rand(3, 3, 8, 8)
    _, feats_s = student.forward_intermediates(lq, list(taps.student))
    with torch.no_grad():
        _, feats_t = teacher.forward_intermediates(lq, list(taps.teacher))
    assert [feats_s[t].shape[1] for t in taps.student] == [taps.student_channels] * len(
        taps.student
    )
    assert [feats_t[t].shape[1] for t in taps.teacher] == [taps.teacher_channels] * len(
        taps.teacher
    )
    ctx = StepContext(lq=lq, gt=lq, sr_s=lq, sr_t=lq, feats_s=feats_s, feats_t=feats_t)
    for loss_name, term in FEATURE_TERMS.items():
        loss = build_loss(
            compose_config("train", [f"backbone={backbone}", f"loss={loss_name}"]).loss
        )
        value = loss.terms[term](ctx)
        assert torch.isfinite(value) and value > 0, (loss_name, value)
