"""loss=mcad_released is what the authors' released code optimises: weights applied twice for
rec/resp/adv, the patch InfoNCE averaged over all B*N windows; loss=mcad keeps the paper's."""

import math

import pytest
import torch
import torch.nn.functional as F

from srdistill.cli.builders import build_loss
from srdistill.losses.context import StepContext
from srdistill.losses.contrastive import info_nce, patch_info_nce
from tests.helpers.configs import compose_config

RELEASED_WEIGHTS = {"rec": 9.0, "resp": 0.25, "cont": 0.05, "adv": 1e-4}
PAPER_WEIGHTS = {"rec": 3.0, "resp": 0.5, "cont": 0.05, "adv": 0.01}


def loss_config(name: str, *overrides: str):
    return compose_config("train", [f"loss={name}", *overrides]).loss


@pytest.mark.parametrize(
    ("name", "weights", "reduction"),
    [("mcad_released", RELEASED_WEIGHTS, "mean"), ("mcad", PAPER_WEIGHTS, "mean")],
)
def test_composed_weights_and_patch_reduction(name, weights, reduction):
    cfg = loss_config(name)
    assert {k: float(t.weight) for k, t in cfg.terms.items()} == pytest.approx(weights, rel=1e-12)
    assert cfg.terms.cont.loss.patch_reduction == reduction


def test_released_weights_are_the_paper_weights_applied_twice_except_contrastive():
    paper, released = loss_config("mcad"), loss_config("mcad_released")
    for name in ("rec", "resp", "adv"):
        assert float(released.terms[name].weight) == pytest.approx(
            float(paper.terms[name].weight) ** 2, rel=1e-12
        )
    assert float(released.terms.cont.weight) == float(paper.terms.cont.weight)
    assert released.d_loss_scale == 0.5


def test_released_total_of_rec_and_resp_by_hand():
    cfg = loss_config("mcad_released", "loss.terms.cont.weight=0", "loss.terms.adv.weight=0")
    loss = build_loss(cfg)
    assert set(loss.terms) == {"rec", "resp"}
    sr_s = torch.tensor([0.5, 0.2]).view(1, 1, 1, 2)
    gt = torch.tensor([0.1, 0.2]).view(1, 1, 1, 2)  # mean |sr_s - gt| = (0.4 + 0) / 2 = 0.2
    sr_t = torch.tensor([0.5, 1.0]).view(1, 1, 1, 2)  # mean |sr_s - sr_t| = (0 + 0.8) / 2 = 0.4
    total, terms = loss(StepContext(lq=gt, gt=gt, sr_s=sr_s, sr_t=sr_t))
    assert float(terms["rec"]) == pytest.approx(0.2) and float(terms["resp"]) == pytest.approx(0.4)
    assert float(total) == pytest.approx(9.0 * 0.2 + 0.25 * 0.4)  # 1.9


def test_released_patch_infonce_is_the_mean_over_all_windows_of_the_batch():
    # 2 images x 2 windows, axis-aligned unit vectors so every cosine is 1, 0 or -1; tau 1
    u_s = torch.tensor([[[1.0, 0], [1, 0]], [[0, 1], [-1, 0]]], dtype=torch.float64)
    u_t = torch.tensor([[[1.0, 0], [0, 1]], [[-1, 0], [0, -1]]], dtype=torch.float64)
    tau = torch.tensor(1.0, dtype=torch.float64)
    # window 0: positive cos 1, negatives 0, -1, 0; windows 1-3: positive cos 0, negatives 1, 0, -1
    first = math.log(2 + math.exp(-1)) - 1
    other = math.log(math.exp(1) + 1 + math.exp(-1))
    expected = (first + 3 * other) / 4
    got = patch_info_nce(u_s, u_t, tau, include_positive=False, negatives="batch", reduction="mean")
    assert float(got) == pytest.approx(expected, abs=1e-12)
    flat = info_nce(u_s.reshape(4, 2), u_t.reshape(4, 2), tau, include_positive=False)
    assert float(got) == pytest.approx(float(flat.mean()), abs=1e-12)
    summed = patch_info_nce(u_s, u_t, tau, False, negatives="batch", reduction="sum")
    assert float(summed) == pytest.approx(2 * expected, abs=1e-12)  # the paper's Eq. 4: x N


def test_released_patch_mean_holds_for_unequal_random_windows():
    torch.manual_seed(0)
    u_s = F.normalize(torch.randn(3, 5, 4, dtype=torch.float64), dim=-1)
    u_t = F.normalize(torch.randn(3, 5, 4, dtype=torch.float64), dim=-1)
    tau = torch.tensor(0.07, dtype=torch.float64)
    got = patch_info_nce(u_s, u_t, tau, include_positive=False, negatives="batch", reduction="mean")
    flat = info_nce(u_s.reshape(15, 4), u_t.reshape(15, 4), tau, include_positive=False)
    assert float(got) == pytest.approx(float(flat.mean()), abs=1e-12)
