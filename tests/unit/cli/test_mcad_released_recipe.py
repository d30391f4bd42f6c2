"""The released MCAD-KD training recipes (experiment=mcad_released_edsr / _swinir) compose with
the released code's schedule, a constant D learning rate, D in eval mode for the G step."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from tests.helpers.configs import compose_config

RECIPES = {
    "mcad_released_edsr": ("edsr", 1e-3, [250000, 400000, 450000, 475000], None),
    "mcad_released_swinir": ("swinir", 1e-4, [250000, 375000, 450000, 475000], 0.999),
}


@pytest.mark.parametrize("experiment", sorted(RECIPES))
def test_released_recipe_composes(experiment):
    backbone, lr, milestones, ema = RECIPES[experiment]
    cfg = compose_config("train", [f"experiment={experiment}"], hydra=True)
    choices = cfg.hydra.runtime.choices
    assert (choices.loss, choices.backbone) == ("mcad_released", backbone)
    # the released option files: x2, HR crop 96 (LR 48), batch 32, manual_seed 10
    assert (cfg.scale, cfg.data.lr_patch_size, cfg.batch_size, cfg.seed) == (2, 48, 32, 10)
    assert cfg.trainer.max_steps == 500000
    assert cfg.optimizer.lr == pytest.approx(lr) and cfg.d_optimizer.lr == pytest.approx(lr)
    assert list(cfg.scheduler.milestones) == milestones and cfg.scheduler.gamma == 0.5
    assert cfg.d_scheduler is None and instantiate(cfg.d_scheduler) is None
    assert cfg.module.d_eval_in_generator_step is True
    assert cfg.module.ema_decay == ema
    assert float(cfg.loss.terms.rec.weight) == 9.0
    # the released EDSR x2 config validates with self_ensemble: true, the SwinIR ones without
    assert cfg.module.val_self_ensemble is (backbone == "edsr")


def test_the_paper_default_keeps_d_in_train_mode_and_decays_its_lr():
    cfg = compose_config("train", ["loss=mcad"])
    assert cfg.module.d_eval_in_generator_step is False
    assert cfg.d_scheduler.milestones == cfg.scheduler.milestones


def test_paper_vs_released_sweep_still_composes():
    cfg = compose_config("train", ["experiment=mcad_paper_vs_released"], hydra=True)
    assert str(cfg.hydra.sweeper.params.loss) == "mcad,mcad_released"
