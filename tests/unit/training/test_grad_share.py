"""Per-term gradient shares: hand-computed values, only the student counts, training unchanged."""

import math

import pytest
import torch
from torch import nn

from srdistill.losses.combine import WeightedLoss
from srdistill.losses.pixel import ReconstructionLoss, ResponseKDLoss
from srdistill.training.grad_share import (
    check_grad_share_every,
    grad_shares,
    summarize,
    weighted_terms,
)
from tests.unit.test_module import fit, make_module


def _w():
    return nn.Parameter(torch.tensor([1.0, 2.0]))


def test_ratio_and_cosine_match_closed_form_gradients():
    w, a, b = _w(), torch.tensor([0.0, 1.0]), torch.tensor([2.0, 0.0])
    terms = {
        "rec": 2 * ((w - a) ** 2).sum(),  # gradient 4 (w - a) = (4, 4)
        "kd": 0.5 * (w * b).sum(),  # gradient 0.5 b = (1, 0)
        "sq": 0.5 * (w**2).sum(),  # gradient w = (1, 2)
    }
    shares = grad_shares(terms, [w])
    expected = {
        "kd/ratio": 1 / (4 * math.sqrt(2)),
        "kd/cos": 1 / math.sqrt(2),
        "sq/ratio": math.sqrt(5) / (4 * math.sqrt(2)),
        "sq/cos": 3 / math.sqrt(10),
        "others/ratio": 0.5,  # (1, 0) + (1, 2) = (2, 2)
        "others/cos": 1.0,
    }
    assert shares.keys() == expected.keys()
    for key, value in expected.items():
        assert shares[key] == pytest.approx(value, abs=1e-6), key
    assert w.grad is None  # nothing accumulated


def test_parameters_outside_the_student_are_excluded():
    w, head = _w(), nn.Parameter(torch.tensor([3.0, 3.0]))
    terms = {"rec": 2 * ((w - torch.tensor([0.0, 1.0])) ** 2).sum(), "proj": (head * w).sum()}
    # on w alone: (3, 3) against (4, 4); counting the head would add (1, 2) to the term only
    shares = grad_shares(terms, [w])
    assert shares["proj/ratio"] == pytest.approx(0.75, abs=1e-6)
    assert shares["proj/cos"] == pytest.approx(1.0, abs=1e-6)
    assert grad_shares(terms, [w, head])["proj/cos"] < 0.99
    assert head.grad is None


def test_zero_gradients_give_zero_not_nan():
    w, unused = _w(), nn.Parameter(torch.zeros(3))
    terms = {"rec": (w * 0).sum(), "kd": w.sum()}
    shares = grad_shares(terms, [w, unused])
    assert shares == {"kd/ratio": 0.0, "kd/cos": 0.0, "others/ratio": 0.0, "others/cos": 0.0}
    assert grad_shares({"rec": w.sum()}, [w]) == {}


def test_weighted_terms_apply_the_weights_and_skip_sub_terms():
    loss = WeightedLoss(
        {
            "rec": {"weight": 3.0, "loss": ReconstructionLoss()},
            "resp": {"weight": 0.5, "loss": ResponseKDLoss()},
        }
    )
    values = {"rec": torch.tensor(2.0), "resp": torch.tensor(4.0), "resp/x": torch.tensor(1.0)}
    assert weighted_terms(loss, values) == {"rec": 6.0, "resp": 2.0}


def test_total_gradient_is_unchanged_by_computing_the_shares():
    torch.manual_seed(1)
    net, head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3)), nn.Linear(3, 2)
    x, y = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 4, 4)

    def gradients(with_shares: bool) -> list[torch.Tensor]:
        net.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        out = net(x)
        terms = {
            "rec": 3.0 * (out - y).abs().mean(),
            "resp": 0.5 * (out - y.flip(-1)).pow(2).mean(),
            "cont": 0.05 * head(out.mean((2, 3))).logsumexp(1).mean(),
        }
        if with_shares:
            assert grad_shares(terms, list(net.parameters()))
        sum(terms.values()).backward()
        return [p.grad.clone() for p in [*net.parameters(), *head.parameters()]]

    plain, shared = gradients(False), gradients(True)
    for a, b in zip(plain, shared, strict=True):
        assert torch.equal(a, b)


def test_module_records_shares_on_every_kth_step_without_changing_training():
    torch.manual_seed(0)
    plain = make_module()
    torch.manual_seed(0)
    shared = make_module(grad_share_every=2)
    torch.manual_seed(5)
    fit(plain, steps=3)
    torch.manual_seed(5)
    fit(shared, steps=3)
    pairs = zip(plain.student.named_parameters(), shared.student.parameters(), strict=True)
    for (name, a), b in pairs:
        assert torch.equal(a, b), name
    assert [r["step"] for r in shared.grad_share.history] == [0, 2]
    assert {"resp/ratio", "cont/cos", "adv/ratio", "others/cos"} <= set(
        shared.grad_share.history[0]
    )
    # the adversarial term reaches the student through D (whose own parameters do not count)
    assert all(r["resp/ratio"] > 0 and r["adv/ratio"] > 0 for r in shared.grad_share.history)
    assert plain.grad_share.history == []


def test_option_needs_a_positive_step_count_and_a_rec_term():
    kd_only = WeightedLoss({"resp": {"weight": 1.0, "loss": ResponseKDLoss()}})
    with pytest.raises(ValueError, match="grad_share_every.*rec"):
        check_grad_share_every(2, kd_only)
    with pytest.raises(ValueError, match=r"^module\.grad_share_every=0: give an integer >= 1"):
        check_grad_share_every(0, kd_only)
    check_grad_share_every(None, kd_only)


def test_summary_means_and_last_values():
    history = [
        {"step": 0, "kd/ratio": 0.2, "kd/cos": 0.5},
        {"step": 2, "kd/ratio": 0.4, "kd/cos": -0.1},
    ]
    record = summarize(2, history)
    assert record["every"] == 2 and record["history"] == history
    kd = record["summary"]["kd"]
    assert kd["ratio_mean"] == pytest.approx(0.3) and kd["ratio_last"] == 0.4
    assert kd["cos_mean"] == pytest.approx(0.2) and kd["cos_last"] == -0.1
