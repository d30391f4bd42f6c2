"""module.balance: weights from measured gradient shares, set once, after N steps."""

import math
import statistics

import pytest
import torch

from srdistill.losses.combine import WeightedLoss
from srdistill.losses.pixel import ReconstructionLoss, ResponseKDLoss
from srdistill.models.backbones.edsr import EDSR
from srdistill.training.balance import (
    LossBalance,
    balance_steps,
    balance_targets,
    check_balance_option,
)
from srdistill.training.grad_share import grad_shares
from tests.helpers.tiny_module import RandomPairs, fit, tiny_module


def _loss(resp=0.5, rec=3.0, groups=None):
    terms = {
        "rec": {"weight": rec, "loss": ReconstructionLoss()},
        "resp": {"weight": resp, "loss": ResponseKDLoss()},
    }
    return WeightedLoss(terms, step_groups=groups)


def test_a_number_targets_every_term_but_rec_and_a_map_only_its_terms():
    loss = _loss()
    assert balance_targets(2, loss) == {"resp": 2.0}
    assert balance_targets({"resp": 0.5}, loss) == {"resp": 0.5}
    assert balance_targets(None, loss) == {}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (0, "positive"),
        (-1.0, "positive"),
        (math.nan, "positive"),
        (math.inf, "positive"),
        (True, "positive"),
        ("1", "positive"),
        ({"resp": 0}, r"target\.resp must be a positive"),
        ({"sa": 1.0}, r"names \['sa'\]"),
        ({"rec": 1.0}, r"names \['rec'\]"),
    ],
)
def test_bad_targets_are_one_line(target, message):
    with pytest.raises(ValueError, match=message):
        balance_targets(target, _loss())


def test_a_loss_without_rec_or_without_other_terms_is_refused():
    only_resp = WeightedLoss({"resp": {"weight": 1.0, "loss": ResponseKDLoss()}})
    with pytest.raises(ValueError, match="reconstruction term 'rec'"):
        balance_targets(1.0, only_resp)
    only_rec = WeightedLoss({"rec": {"weight": 1.0, "loss": ReconstructionLoss()}})
    with pytest.raises(ValueError, match="no term besides 'rec'"):
        balance_targets(1.0, only_rec)


def test_a_term_in_another_optimizer_step_is_refused():
    loss = _loss(groups=[["rec"], ["resp"]])
    with pytest.raises(ValueError, match=r"resp is minimised in another optimizer step.*map"):
        balance_targets(1.0, loss)


@pytest.mark.parametrize(("steps", "max_steps"), [(0, 10), (2.5, 10), (True, 10), (10, 10)])
def test_steps_must_leave_steps_to_train(steps, max_steps):
    with pytest.raises(ValueError, match=r"module\.balance\.steps"):
        balance_steps(steps, max_steps)
    assert balance_steps(9, 10) == 9 and balance_steps(3, -1) == 3  # -1: no step limit
    check_balance_option({"target": None, "steps": 0}, _loss(), 10)  # off: nothing checked


def test_calibration_steps_train_exactly_as_reconstruction_alone():
    balanced = tiny_module(_loss(), balance={"target": 1.0, "steps": 3})
    assert balanced.loss.weights == {"rec": 3.0, "resp": 0.0}
    plain = tiny_module(WeightedLoss({"rec": {"weight": 3.0, "loss": ReconstructionLoss()}}))
    for module in (balanced, plain):
        torch.manual_seed(5)
        fit(module, steps=3)
    pairs = zip(balanced.student.parameters(), plain.student.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert len(balanced.balance.ratios["resp"]) == 3


def test_the_weight_is_target_over_the_median_share_measured_at_weight_one():
    module = tiny_module(_loss(), balance={"target": 0.25, "steps": 3})
    # the first step's share, computed by hand on the first batch with the initial weights
    batch = next(iter(torch.utils.data.DataLoader(RandomPairs(), batch_size=2)))
    student = EDSR(scale=2, num_feat=8, num_block=1)
    student.load_state_dict(module.student.state_dict())
    sr_s, sr_t = student(batch["lq"]), module.teacher(batch["lq"]).detach()
    rec = 3.0 * (sr_s - batch["gt"]).abs().mean()
    resp = (sr_s - sr_t).abs().mean()
    by_hand = grad_shares({"rec": rec, "resp": resp}, list(student.parameters()))["resp/ratio"]
    fit(module, steps=5)
    ratios = module.balance.ratios["resp"]
    assert ratios[0] == pytest.approx(by_hand, rel=1e-6)
    expected = 0.25 / statistics.median(ratios)
    assert module.balance.weights == {"resp": pytest.approx(expected, rel=1e-12)}
    assert module.loss.weights["resp"] == module.balance.weights["resp"]
    summary = module.balance.summary()
    assert summary["configured"] == {"resp": 0.5} and summary["steps"] == 3
    assert summary["measured_ratio_at_weight_1"]["resp"] == statistics.median(ratios)


def test_a_resumed_run_keeps_its_balanced_weights_and_refuses_foreign_records():
    loss = _loss()
    option = {"target": {"resp": 1.0}, "steps": 2}
    balance = LossBalance({"target": 1.0, "steps": 2}, loss)
    balance.restore({**option, "ratios": {"resp": [0.5, 0.25]}, "weights": {"resp": 4.0}})
    assert loss.weights["resp"] == 4.0 and not balance.calibrating
    mid = LossBalance({"target": 1.0, "steps": 2}, _loss())
    mid.restore({**option, "ratios": {"resp": [0.5]}, "weights": None})
    assert mid.calibrating and mid.ratios == {"resp": [0.5]}
    for bad in (
        {**option, "ratios": {"sa": [1.0]}, "weights": None},
        {**option, "ratios": {"resp": ["os.system"]}, "weights": None},
        {**option, "ratios": {"resp": [1.0]}, "weights": {"resp": math.nan}},
        ["not", "a", "mapping"],
    ):
        with pytest.raises(ValueError, match="balance"):
            LossBalance({"target": 1.0, "steps": 2}, _loss()).restore(bad)


def test_balance_state_travels_in_the_run_checkpoint(tmp_path):
    module = tiny_module(_loss(), balance={"target": 1.0, "steps": 2})
    trainer = fit(module, steps=3)
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)
    record = torch.load(path, weights_only=True)["balance"]
    assert record["weights"] == module.balance.weights
    fresh = tiny_module(_loss(), balance={"target": 1.0, "steps": 2})
    fresh.on_load_checkpoint(torch.load(path, weights_only=True))
    assert fresh.loss.weights["resp"] == module.loss.weights["resp"]


class NaNOnSecondCall(torch.nn.Module):
    """A term (the response L1) that is NaN on its second call: one bad step."""

    def __init__(self) -> None:
        super().__init__()
        self.calls, self.inner = 0, ResponseKDLoss()
        self.needs_teacher = True

    def forward(self, ctx):
        self.calls += 1
        value = self.inner(ctx)
        return value * float("nan") if self.calls == 2 else value


def test_a_non_finite_step_measures_nothing():
    terms = {
        "rec": {"weight": 3.0, "loss": ReconstructionLoss()},
        "resp": {"weight": 0.5, "loss": NaNOnSecondCall()},
    }
    module = tiny_module(WeightedLoss(terms), balance={"target": 1.0, "steps": 2})
    fit(module, steps=4)
    ratios = module.balance.ratios["resp"]
    assert len(ratios) == 2 and all(math.isfinite(r) and r > 0 for r in ratios)
    assert module.balance.weights["resp"] == pytest.approx(1.0 / statistics.median(ratios))
    assert all(math.isfinite(v) for v in module.balance.state()["ratios"]["resp"])


def test_the_summary_holds_the_medians_the_weights_came_from():
    module = tiny_module(_loss(), balance={"target": 2.0, "steps": 2})
    fit(module, steps=3)
    measured = module.balance.summary()["measured_ratio_at_weight_1"]["resp"]
    assert module.balance.weights["resp"] == pytest.approx(2.0 / measured, rel=1e-12)


def test_a_resume_with_another_option_or_none_is_refused():
    record = LossBalance({"target": 1.0, "steps": 2}, _loss()).state()
    with pytest.raises(ValueError, match=r"ckpt_path:.*target=\{'resp': 1\.0\}.*same"):
        LossBalance({"target": 0.5, "steps": 2}, _loss()).restore(record)
    with pytest.raises(ValueError, match="steps=2"):
        LossBalance({"target": 1.0, "steps": 3}, _loss()).restore(record)
    with pytest.raises(ValueError, match="now target=None"):
        LossBalance(None, _loss()).restore(record)
    with pytest.raises(ValueError, match="trained without module.balance"):
        LossBalance({"target": 1.0, "steps": 2}, _loss()).check_fresh_start({"global_step": 7})
    LossBalance({"target": 1.0, "steps": 2}, _loss()).check_fresh_start({"global_step": 0})
    LossBalance(None, _loss()).check_fresh_start({"global_step": 7})


def test_the_option_itself_and_an_empty_map_are_one_line():
    with pytest.raises(ValueError, match=r"module\.balance must be \{target, steps\} or null"):
        check_balance_option(1, _loss(), 10)
    with pytest.raises(ValueError, match="empty map"):
        balance_targets({}, _loss())


def test_the_step_group_hint_names_a_term_that_could_be_balanced():
    loss = WeightedLoss(
        {
            "rec": {"weight": 1.0, "loss": ReconstructionLoss()},
            "resp": {"weight": 1.0, "loss": ResponseKDLoss()},
            "late": {"weight": 1.0, "loss": ResponseKDLoss()},
        },
        step_groups=[["rec", "resp"], ["late"]],
    )
    with pytest.raises(ValueError, match=r"late is minimised.*e\.g\. \{resp: 1\.0\}"):
        balance_targets(1.0, loss)
    alone = _loss(groups=[["rec"], ["resp"]])
    with pytest.raises(ValueError) as err:
        balance_targets(1.0, alone)
    assert "e.g." not in str(err.value)


def test_the_grad_share_probe_leaves_out_terms_still_being_measured():
    module = tiny_module(_loss(), balance={"target": 1.0, "steps": 2})
    module.grad_share.every = 1
    fit(module, steps=4)
    steps_with_resp = [r["step"] for r in module.grad_share.history if "resp/ratio" in r]
    assert steps_with_resp == [2, 3]
