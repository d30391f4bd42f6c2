"""The baseline loss configs' default weights are their sources' values in srdistill's units
([0, 1] images, mean-reduced losses); the MCAD-KD table sweeps run the DUKD rows with each
released DUKD config and place every job in a row of the paper's table."""

import pytest
from omegaconf import OmegaConf

from srdistill.report.paper import paper_table, row_keys
from tests.helpers.configs import compose_config

# an L1 on 0-255 images is 255 x the same L1 on [0, 1] images
PIXELS = 255.0


def weights(loss: str, *overrides: str) -> dict[str, float]:
    cfg = compose_config("train", ["experiment=smoke", f"loss={loss}", *overrides])
    return {name: float(term.weight) for name, term in cfg.loss.terms.items()}


def test_fakd_is_the_official_recipe_with_its_pixel_losses_on_0_255_images():
    # code/loss.py + scripts/train_edsr_SA_x4.sh: (1 - 0.5) L_rec + 0.5 L_kd + 10 L_SA
    official = {"rec": 0.5 * PIXELS, "resp": 0.5 * PIXELS, "sa": 10.0}
    ours = weights("fakd")
    for term in ("resp", "sa"):
        expected = official[term] / official["rec"]
        assert ours[term] / ours["rec"] == pytest.approx(expected, abs=5e-4), term


def test_csd_is_the_official_lambda_c_beside_an_l1_on_0_255_images():
    # README: --contra_lambda 200; trainer: l1_loss + contra_lambda * contras_loss
    ours = weights("csd")
    assert ours["cont"] / ours["rec"] == pytest.approx(200.0 / PIXELS, abs=5e-4)


def test_vanilla_kd_is_dukds_one_to_one_on_0_1_images():
    assert weights("kd") == {"rec": 1.0, "resp": 1.0}


def test_rkd_keeps_the_papers_distance_to_angle_ratio():
    term = compose_config("train", ["experiment=smoke", "loss=rkd"]).loss.terms.rkd.loss
    assert term.angle_weight / term.distance_weight == 2.0


@pytest.mark.parametrize(("loss", "term"), [("at", "at"), ("fitnet", "fit"), ("rkd", "rkd")])
def test_calibrated_weights_are_rounded_to_one_significant_digit(loss, term):
    weight = weights(loss)[term]
    assert 0 < weight == float(f"{weight:.1g}")


def test_dukds_fakd_trains_exactly_what_vanilla_kd_trains():
    # its feature loss is detached in the released code: weight 0, no other term changed
    active = {name: w for name, w in weights("fakd_dukd").items() if w}
    assert active == weights("kd")


# the released yun224/DUKD options/{EDSR,RCAN,Swinir}/dukd_*_x<s>*.yml: pixel_opt loss_weight,
# noisy prob (none: 0), n_gt_sub, zoom_out, val self_ensemble; every one has ema_decay 0.999
RELEASED = {
    ("edsr", 2): (5.0, 0.3, 2, True, True),
    ("edsr", 3): (5.0, 0.3, 1, True, True),
    ("edsr", 4): (5.0, 0.3, 1, True, True),
    ("rcan", 2): (1.0, 0.0, 1, False, False),
    ("rcan", 3): (2.0, 0.3, 1, True, False),
    ("rcan", 4): (1.0, 0.0, 1, False, False),
    ("swinir", 2): (5.0, 0.3, 1, False, False),
    ("swinir", 3): (5.0, 0.3, 1, False, False),
    ("swinir", 4): (5.0, 0.3, 1, False, False),
}


@pytest.mark.parametrize(("backbone", "scale"), sorted(RELEASED))
def test_dukd_released_is_the_released_config_of_each_backbone_and_scale(backbone, scale):
    cfg = compose_config("train", [f"backbone={backbone}", "loss=dukd_released", f"scale={scale}"])
    lambda_rec, p, n_sub, zoom_out, self_ensemble = RELEASED[backbone, scale]
    loss = cfg.loss
    assert (loss.terms.rec.weight, loss.terms.resp.weight) == (lambda_rec, 1.0)
    assert (loss.terms.zoom_in.loss.p, loss.terms.zoom_in.loss.n_sub) == (p, n_sub)
    assert bool(loss.terms.zoom_out.weight) is zoom_out
    assert loss.terms.zoom_out.loss.rec_weight == lambda_rec
    assert (cfg.module.ema_decay, cfg.module.val_self_ensemble) == (0.999, self_ensemble)
    # what still differs is recorded with the run
    assert cfg.tags.method == "dukd" and f"batch {cfg.batch_size}" in cfg.tags.diverges
    assert ("x2 DUKD student" in cfg.tags.diverges) is ((backbone, scale) == ("edsr", 4))


def _method(table: str, loss: str) -> str:
    cfg = compose_config("train", [f"experiment={table}", f"loss={loss}"])
    method = OmegaConf.to_container(cfg.tags)["method"]
    # the default tag is the loss choice (resolved by Hydra at run time)
    return loss if method == "${hydra:runtime.choices.loss}" else method


@pytest.mark.parametrize("table", ["mcad_tab3", "mcad_tab4", "mcad_tab5"])
def test_every_swept_loss_lands_in_a_row_of_its_paper_table(table):
    sweep = compose_config("train", [f"experiment={table}"], hydra=True).hydra.sweeper.params
    losses = sweep.loss.split(",")
    rows = set().union(*(row_keys(row) for row in paper_table(table)["rows"]))
    assert {_method(table, loss) for loss in losses} == rows
    assert "dukd_released" in losses and "dukd" not in losses
