"""The no-teacher control arm and the final comparison table."""

from __future__ import annotations

import pytest
import torch

from srdistill.cli.builders import build_loss, build_module
from srdistill.cli.control import build_control, control_config
from srdistill.cli.final_table import format_comparison
from tests.helpers.configs import compose_config


def _cfg(tmp_path, *overrides):
    base = ["experiment=smoke", f"run_dir={tmp_path}", "compare_without_teacher=true"]
    return compose_config("train", [*base, *overrides])


def test_the_control_drops_only_the_teacher_terms_and_starts_from_the_same_weights(tmp_path):
    cfg = _cfg(tmp_path, "loss=kd")
    module = build_module(cfg)
    control_cfg, control = build_control(cfg, module)
    assert list(module.loss.terms) == ["rec", "resp"]
    assert list(control.loss.terms) == ["rec"] and control.teacher is None
    assert control_cfg.run_dir == f"{tmp_path}/without_teacher"
    assert control_cfg.callbacks.best.dirpath == f"{tmp_path}/without_teacher/checkpoints"
    mine, theirs = module.student.state_dict(), control.student.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_mcad_keeps_its_adversarial_term_against_the_ground_truth(tmp_path):
    cfg = _cfg(tmp_path, "loss=mcad")
    control = control_config(cfg, build_loss(cfg.loss))
    kept = [n for n, t in control.loss.terms.items() if float(t.weight) != 0.0]
    assert kept == ["rec", "adv"]


@pytest.mark.parametrize(
    ("loss", "target", "expected"),
    [
        ("kd", "1.0", None),  # only rec left: nothing to balance
        ("mcad", "0.5", 0.5),  # the adversarial term stays, balanced as in the distilled run
        ("mcad", "{resp:1,adv:0.2}", {"adv": 0.2}),
        ("mcad", "{cont:1}", None),
        ("kd", "null", None),
    ],
)
def test_the_control_balances_the_terms_it_keeps(tmp_path, loss, target, expected):
    cfg = _cfg(tmp_path, f"loss={loss}", f"module.balance.target={target}")
    target = control_config(cfg, build_loss(cfg.loss)).module.balance.target
    assert (target if not hasattr(target, "items") else dict(target)) == expected


def test_the_control_of_a_run_with_balancing_switched_off_entirely(tmp_path):
    cfg = _cfg(tmp_path, "loss=kd", "module.balance=null")
    assert control_config(cfg, build_loss(cfg.loss)).module.balance is None


def test_the_control_logs_to_csv_but_not_into_the_distilled_runs_wandb_run(tmp_path):
    cfg = _cfg(tmp_path, "loss=kd", "logger=wandb")
    assert ["wandb" in c._target_ for c in cfg.logger] == [True, False]
    control = control_config(cfg, build_loss(cfg.loss))
    assert [c._target_ for c in control.logger] == ["lightning.pytorch.loggers.CSVLogger"]
    assert control.logger[0].save_dir == f"{tmp_path}/without_teacher"


def test_a_loss_without_teacher_needs_no_control(tmp_path):
    cfg = _cfg(tmp_path, "loss=scratch")
    assert control_config(cfg, build_loss(cfg.loss)) is None


def test_a_loss_made_only_of_teacher_terms_has_no_control(tmp_path):
    cfg = _cfg(tmp_path, "loss=kd", "loss.terms.rec.weight=0")
    loss = build_loss(cfg.loss)
    with pytest.raises(ValueError, match="compare_without_teacher"):
        control_config(cfg, loss)


def test_the_table_names_the_distilled_student_and_its_gain():
    def scores(psnr):
        return {"SetA": {"psnr": psnr, "ssim": 0.5}, "SetB": {"psnr": psnr + 1, "ssim": 0.6}}

    results = {
        "bicubic": scores(28.0),
        "teacher": scores(30.0),
        "student without teacher": scores(29.0),
        "student": scores(29.25),
    }
    table = format_comparison(results, 4, distilled=True, seed=3).splitlines()
    assert table[0] == "x4, seed 3, PSNR-Y (dB) / SSIM-Y on the validation images"
    assert table[-2].startswith("student distilled") and "29.2500 / 0.5000" in table[-2]
    assert table[-1].split() == ["gain", "of", "distillation", "+0.2500", "dB", "+0.2500", "dB"]
