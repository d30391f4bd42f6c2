"""x8 self-ensemble: exact inverses, equal to the plain forward for an equivariant network,
the hand-computed mean otherwise, and wired into eval.py and validation."""

import json

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from srdistill.cli import eval as eval_cli
from srdistill.cli.final_table import comparison_table
from srdistill.data.samples import VAL_SET, materialize_samples
from srdistill.eval.benchmark import evaluate_benchmarks
from srdistill.eval.ensemble import (
    TRANSFORMS,
    SelfEnsemble,
    dihedral,
    inverse_dihedral,
    self_ensemble,
)
from srdistill.losses.combine import WeightedLoss
from srdistill.losses.pixel import ReconstructionLoss
from srdistill.metrics.sr import PSNR
from srdistill.models.backbones.bicubic import Bicubic
from srdistill.models.backbones.edsr import EDSR
from srdistill.module import DistillationModule
from tests.helpers.cli import run_script
from tests.helpers.configs import compose_config
from tests.helpers.images import write_png
from tests.helpers.shared import requires_shared, shared_path


def pointwise_then_nearest(scale=2):
    """A 1x1 conv and nearest-neighbour upsampling: commutes with every flip and rotation."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 3, 1), nn.Upsample(scale_factor=scale, mode="nearest"))


def asymmetric_conv(scale=2):
    """A random 3x3 kernel: neither symmetric nor rotation invariant."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 3, 3, padding=1), nn.Upsample(scale_factor=scale, mode="nearest")
    )


def test_the_eight_transforms_are_distinct_and_exactly_undone():
    x = torch.rand(2, 3, 5, 7)
    square = torch.rand(1, 1, 4, 4)
    images = [dihedral(square, flip, turns) for flip, turns in TRANSFORMS]
    assert len(images) == 8
    assert not any(torch.equal(a, b) for i, a in enumerate(images) for b in images[i + 1 :])
    for flip, turns in TRANSFORMS:
        assert torch.equal(inverse_dihedral(dihedral(x, flip, turns), flip, turns), x)


def test_equivariant_network_gives_its_plain_forward_on_a_non_square_input():
    model = pointwise_then_nearest().eval()
    x = torch.rand(2, 3, 7, 12)
    with torch.no_grad():
        plain, ensembled = model(x), SelfEnsemble(model)(x)
    assert ensembled.shape == plain.shape == (2, 3, 14, 24)
    assert torch.allclose(ensembled, plain, atol=1e-6, rtol=0)


def test_asymmetric_network_gives_the_mean_of_the_eight_back_transformed_outputs():
    model = asymmetric_conv().eval()
    x = torch.rand(1, 3, 6, 9)
    # the dihedral group written independently: flip rows and/or columns, then maybe transpose;
    # the inverse transposes back first, then flips again
    outputs = []
    with torch.no_grad():
        for transpose in (False, True):
            for dims in ((), (-1,), (-2,), (-2, -1)):
                y = x.flip(dims) if dims else x
                y = model(y.transpose(-2, -1) if transpose else y)
                y = y.transpose(-2, -1) if transpose else y
                outputs.append(y.flip(dims) if dims else y)
        expected = torch.stack(outputs).mean(0)
        plain, ensembled = model(x), self_ensemble(model, x)
    assert ensembled.shape == plain.shape == (1, 3, 12, 18)
    assert torch.allclose(ensembled, expected, atol=1e-6, rtol=0)
    assert (ensembled - plain).abs().max() > 1e-3


def test_half_precision_outputs_are_averaged_in_float32():
    model = pointwise_then_nearest()
    x = torch.rand(1, 3, 4, 6)
    half = model.to(torch.bfloat16)
    with torch.no_grad():
        out = self_ensemble(half, x.to(torch.bfloat16))
    assert out.dtype == torch.float32


@pytest.fixture
def random_edsr_weights(tmp_path):
    torch.manual_seed(2)
    path = tmp_path / "edsr_tiny.pth"
    torch.save(EDSR(scale=2, num_feat=16, num_block=2).state_dict(), path)
    return path


def test_eval_scores_the_ensembled_network_and_says_so(random_edsr_weights, tmp_path, capsys):
    out = tmp_path / "r.json"
    overrides = ["model=edsr_tiny_student", "scale=2", f"ckpt={random_edsr_weights}"]
    plain = eval_cli.run(compose_config("eval", overrides))
    capsys.readouterr()
    results = eval_cli.run(compose_config("eval", [*overrides, "self_ensemble=true", f"out={out}"]))
    assert "self-ensemble" in capsys.readouterr().out.splitlines()[0]
    model = EDSR(scale=2, num_feat=16, num_block=2)
    model.load_state_dict(torch.load(random_edsr_weights, weights_only=True))
    direct = evaluate_benchmarks(SelfEnsemble(model), materialize_samples(), [VAL_SET], 2)
    assert results[VAL_SET]["psnr"] == direct[VAL_SET]["psnr"] != plain[VAL_SET]["psnr"]
    assert json.loads(out.read_text())[VAL_SET]["self_ensemble"] is True
    assert plain[VAL_SET]["self_ensemble"] is False


def test_eval_cli_scores_bicubic_through_the_ensemble(tmp_path, photo):
    # MATLAB bicubic rounds to 8 bits after each 1-D pass, so quarter turns (which swap the
    # passes) change it slightly: the CLI must give the ensemble's score, not the plain one
    write_png(tmp_path / "bench" / "Tiny" / "HR" / "a.png", photo)
    out = tmp_path / "r.json"
    proc = run_script(
        "eval.py",
        "self_ensemble=true",
        f"data.root={tmp_path / 'bench'}",
        "data.sets=[Tiny]",
        f"out={out}",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "x8 self-ensemble" in proc.stdout.splitlines()[0]
    written = json.loads(out.read_text())["Tiny"]
    direct = evaluate_benchmarks(SelfEnsemble(Bicubic(4)), tmp_path / "bench", ["Tiny"], 4)
    plain = evaluate_benchmarks(Bicubic(4), tmp_path / "bench", ["Tiny"], 4)
    assert written["self_ensemble"] is True
    assert written["psnr"] == direct["Tiny"]["psnr"] != plain["Tiny"]["psnr"]
    assert written["psnr"] == pytest.approx(plain["Tiny"]["psnr"], abs=0.05)


@requires_shared("weights", "span_tiny_ch26_x4.pth")
@requires_shared("data", "benchmarks", "Set5")
def test_self_ensemble_improves_released_span_tiny_on_set5():
    overrides = [
        "model=span_ch26",
        f"ckpt={shared_path('weights', 'span_tiny_ch26_x4.pth')}",
        "scale=4",
        f"data.root={shared_path('data', 'benchmarks')}",
        "data.sets=[Set5]",
    ]
    plain = eval_cli.run(compose_config("eval", overrides))["Set5"]
    ensembled = eval_cli.run(compose_config("eval", [*overrides, "self_ensemble=true"]))["Set5"]
    assert ensembled["psnr"] > plain["psnr"] and ensembled["ssim"] >= plain["ssim"]


class Pairs(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"lq": torch.rand(3, 16, 10, generator=g), "gt": torch.rand(3, 32, 20, generator=g)}


def psnr_of(network, dataset) -> float:
    psnr = PSNR(2)
    with torch.no_grad():
        for item in (dataset[i] for i in range(len(dataset))):
            psnr.update(network(item["lq"][None]), item["gt"][None])
    return float(psnr.compute())


@pytest.mark.parametrize("ensemble", [False, True])
def test_validation_scores_the_ensembled_student_when_asked(ensemble):
    student = asymmetric_conv().eval()
    plain, ensembled = psnr_of(student, Pairs()), psnr_of(SelfEnsemble(student), Pairs())
    assert abs(plain - ensembled) > 1e-3  # so the logged value tells which network was scored
    module = DistillationModule(
        student,
        WeightedLoss({"rec": {"weight": 1.0, "loss": ReconstructionLoss()}}),
        torch.optim.Adam,
        val_sets=["Tiny"],
        scale=2,
        val_self_ensemble=ensemble,
    )
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    logged = trainer.validate(module, DataLoader(Pairs(), batch_size=1), verbose=False)[0]
    expected = ensembled if ensemble else plain
    assert logged["val/Tiny/psnr_y"] == pytest.approx(expected, abs=1e-5)


class _Run:
    """What the final table reads of a trained module and its data."""

    def __init__(self, student, ensemble):
        self.hparams = {"val_self_ensemble": ensemble}
        self.teacher = None
        self.export_student = lambda: student
        self.val_root, self.val_sets = None, [VAL_SET]


def test_final_table_scores_the_student_row_with_the_ensemble_and_says_so():
    student = asymmetric_conv()
    run = _Run(student, ensemble=True)
    results, table = comparison_table(run, run, 2, names=("bicubic", "student"))
    samples = materialize_samples()
    ensembled = evaluate_benchmarks(SelfEnsemble(student), samples, [VAL_SET], 2)[VAL_SET]
    plain = evaluate_benchmarks(student, samples, [VAL_SET], 2)[VAL_SET]
    assert results["student"][VAL_SET]["psnr"] == ensembled["psnr"] != plain["psnr"]
    assert results["student"][VAL_SET]["self_ensemble"] is True
    assert results["bicubic"][VAL_SET]["self_ensemble"] is False
    rows = {line.split("  ")[0]: line for line in table.splitlines()[2:]}
    assert set(rows) == {"bicubic", "student (x8 self-ensemble)"}
