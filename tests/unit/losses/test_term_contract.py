"""The loss-term contract: defaults, type checks, and what WeightedLoss derives from it."""

import importlib
import inspect
import pkgutil

import pytest
import torch
from torch import nn

import srdistill.losses
from srdistill.cli.builders import build_loss
from srdistill.losses.adversarial import GeneratorAdversarialLoss
from srdistill.losses.combine import WeightedLoss
from srdistill.losses.context import StepContext
from srdistill.losses.contrastive import (
    LearnedTemperature,
    MultiScaleContrastiveLoss,
    ProjectionHead,
)
from srdistill.losses.csd import ContrastiveSelfDistillationLoss
from srdistill.losses.pixel import ReconstructionLoss
from srdistill.losses.term import LossTerm, TermContract
from tests.helpers.configs import compose_config

# modules of the losses package that are parts of terms or their sum, not terms
NOT_TERMS = {WeightedLoss, LossTerm, ProjectionHead, LearnedTemperature}


class PlainTeacherTerm(nn.Module):
    """A user's term in the form that predates LossTerm: a plain module, one attribute."""

    needs_teacher = True

    def forward(self, ctx):
        return (ctx.sr_s - ctx.teacher_output()).abs().mean()


class Copies(nn.Module):
    """A stand-in for CSD's VGG-19: the image itself at each of the five layers."""

    def forward(self, x):
        return [x] * 5


def weighted(**terms):
    return WeightedLoss({name: {"weight": 1.0, "loss": term} for name, term in terms.items()})


def context(batch=2, size=16):
    torch.manual_seed(0)
    sr_s, sr_t = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)
    return StepContext(lq=sr_s, gt=sr_t, sr_s=sr_s, sr_t=sr_t)


def test_a_plain_module_declaring_only_needs_teacher_gets_the_defaults():
    contract = TermContract.of(PlainTeacherTerm())
    assert contract == TermContract(
        needs_teacher=True,
        student_taps=(),
        teacher_taps=(),
        min_batch_size=1,
        min_hr_patch_size=1,
        runs_teacher=False,
        reads_student_output=True,
        adversarial=False,
        values_from=None,
        has_step_metrics=False,
    )
    loss = weighted(rec=ReconstructionLoss(), kd=PlainTeacherTerm())
    assert loss.needs_teacher and loss.reads_teacher_outputs_only
    assert not loss.needs_discriminator and loss.teacher_runners == []
    assert (loss.min_batch_size, loss.min_hr_patch_size) == (1, 1)
    ctx = context()
    total, values = loss(ctx)
    assert set(values) == {"rec", "kd"}
    expected = (ctx.sr_s - ctx.gt).abs().mean() + (ctx.sr_s - ctx.sr_t).abs().mean()
    assert total.item() == pytest.approx(expected.item())


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("needs_teacher", 2),  # 1 and 0 read as True and False, as before
        ("adversarial", "yes"),
        ("min_batch_size", 0),
        ("min_batch_size", True),
        ("min_hr_patch_size", 2.5),
        ("student_taps", "block_1"),
        ("teacher_taps", ["block_1", 2]),
    ],
)
def test_a_wrong_type_is_a_one_line_error_naming_the_class_and_attribute(attribute, value):
    term = type("MyTerm", (nn.Module,), {attribute: value})()
    with pytest.raises(ValueError) as err:
        weighted(mine=term)
    message = str(err.value)
    assert "\n" not in message and message.startswith("loss.terms.mine: ")
    assert f"MyTerm.{attribute}" in message


def test_a_term_added_from_the_command_line_brings_its_contract():
    target = "srdistill.losses.contrastive.MultiScaleContrastiveLoss"
    overrides = ["experiment=smoke", "+loss.terms.extra.weight=0.1"]
    overrides += [f"+loss.terms.extra.loss.{k}" for k in (f"_target_={target}", "dim=8")]
    loss = build_loss(compose_config("train", overrides).loss)
    assert loss.contracts["extra"].needs_teacher and loss.needs_teacher
    assert loss.min_batch_size == 2 and loss.min_hr_patch_size == 48


def test_an_attribute_error_inside_a_property_is_not_taken_for_the_default():
    class Broken(LossTerm):
        @property
        def min_batch_size(self):
            return self.missing_option

    # one line naming the class and attribute, never the default
    with pytest.raises(ValueError, match="Broken.min_batch_size cannot be read"):
        TermContract.of(Broken())


def test_the_adversarial_attribute_asks_for_a_discriminator():
    class UserAdversarial(nn.Module):
        adversarial = True

    assert weighted(adv=UserAdversarial()).needs_discriminator
    assert weighted(adv=GeneratorAdversarialLoss()).needs_discriminator
    assert not weighted(rec=ReconstructionLoss()).needs_discriminator


def test_a_term_running_the_teacher_needs_it_online():
    class Runner(LossTerm):
        runs_teacher = True
        reads_student_output = False

    loss = weighted(rec=ReconstructionLoss(), run=Runner())
    assert loss.needs_teacher and loss.teacher_runners == ["run"]
    assert not loss.reads_teacher_outputs_only
    assert loss.reads_student_output(["rec", "run"]) and not loss.reads_student_output(["run"])


def test_taps_of_all_terms_once_each_in_order():
    class Taps(LossTerm):
        def __init__(self, student, teacher):
            super().__init__()
            self.student_taps, self.teacher_taps = student, teacher

    loss = weighted(a=Taps(["b1", "b2"], ("t1",)), b=Taps(("b2", "b3"), ["t1", "t2"]))
    assert loss.student_taps == ["b1", "b2", "b3"] and loss.teacher_taps == ["t1", "t2"]


def test_logged_values_appear_under_the_term_name():
    class Parts(LossTerm):
        def forward(self, ctx):
            self.parts = {"a": ctx.sr_s.mean(), "b": ctx.gt.mean()}
            return self.parts["a"] + self.parts["b"]

        def logged_values(self):
            return self.parts

    ctx = context()
    total, values = weighted(sum=Parts())(ctx)
    assert set(values) == {"sum", "sum/a", "sum/b"}
    assert values["sum/a"].item() == pytest.approx(ctx.sr_s.mean().item())


def test_mcad_logs_its_temperature_and_csd_none():
    mcad = MultiScaleContrastiveLoss(dim=8, num_patches=2, patch_size=8, tau_init=0.1)
    loss = weighted(cont=mcad)
    _, values = loss(context())
    assert set(values) == {"cont", "cont/img", "cont/patch"}
    assert set(loss.step_metrics()) == {"tau"}  # train/tau, as always
    assert loss.step_metrics()["tau"].item() == pytest.approx(0.1)
    csd = ContrastiveSelfDistillationLoss(num_negatives=2)
    csd.vgg = Copies()
    loss = weighted(cont=csd)
    _, values = loss(context())
    assert set(values) == {"cont", "cont/d_pos", "cont/d_neg"}
    assert loss.step_metrics() == {}


def _loss_modules():
    for info in pkgutil.iter_modules(srdistill.losses.__path__):
        yield importlib.import_module(f"srdistill.losses.{info.name}")


def test_every_built_in_term_is_a_loss_term():
    classes = {
        cls
        for module in _loss_modules()
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, nn.Module) and cls.__module__ == module.__name__
    }
    terms = classes - NOT_TERMS
    assert len(terms) >= 15  # the built-in terms and their shared bases
    assert [cls.__name__ for cls in terms if not issubclass(cls, LossTerm)] == []


def test_older_and_wrapped_terms_keep_their_contract():
    class OldStyle(nn.Module):  # a term written before the contract: last_terms, plain flags
        needs_teacher = 1
        teacher_taps = ["body.0"]

        def forward(self, ctx):
            self.last_terms = {"part": ctx.sr_s.mean()}
            return ctx.sr_s.mean()

    old = OldStyle()
    old.last_terms = {}
    contract = TermContract.of(old)
    assert contract.needs_teacher is True and contract.values_from == "last_terms"
    loss = weighted(x=old)
    assert set(loss(context())[1]) == {"x", "x/part"}
    wrapped = TermContract.of(torch.compile(OldStyle(), backend="eager"))
    assert wrapped.needs_teacher and wrapped.teacher_taps == ("body.0",)
