"""Our pipeline against published numbers, on the real benchmark images and released weights.

DSCLoRA Tab. 3 (SPAN-Tiny and DSCF, x4), the classic bicubic table, MCAD-KD Tab. 2 (parameters
and FLOPs), and the MATLAB-made LR files. Needs the shared folder (SRDISTILL_SHARED).
"""

import json

import numpy as np
import pytest

from srdistill.data.images import mod_crop, read_rgb
from srdistill.data.matlab_bicubic import imresize
from srdistill.eval.benchmark import evaluate_benchmarks
from srdistill.eval.cost import count_flops, count_parameters
from srdistill.models.backbones.bicubic import Bicubic
from srdistill.models.backbones.edsr import edsr_student, edsr_teacher
from srdistill.models.backbones.rcan import rcan_student, rcan_teacher
from srdistill.models.backbones.span import span_ch26, span_ch28
from srdistill.models.backbones.swinir import swinir_student, swinir_teacher
from srdistill.models.checkpoint import load_weights
from tests.helpers.shared import requires_shared, shared_path

BENCH = shared_path("data", "benchmarks")
WEIGHTS = shared_path("weights")

# DSCLoRA paper Tab. 3, Y-PSNR x4
PAPER = {
    "span_tiny_ch26_x4.pth": {"Set5": 31.7252, "Set14": 28.3151, "Urban100": 25.5544},
    "dscf_ch26_x4.pth": {"Set5": 31.7332, "Set14": 28.3246, "Urban100": 25.5774},
}
CLASSIC_BICUBIC = {  # Y-PSNR, the classic table (gray images measured on their own values)
    "Set5": {2: 33.66, 3: 30.39, 4: 28.42},
    "Set14": {2: 30.24, 3: 27.55, 4: 26.00},
    "Urban100": {2: 26.88, 3: 24.46, 4: 23.14},
}


@requires_shared("data", "benchmarks", "Set14", "LR_bicubic")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_generated_lr_equals_matlab_files(scale):
    equal = total = worst = 0
    for name in ("Set5", "Set14"):
        for hr_path in sorted((BENCH / name / "HR").glob("*.png")):
            hr = mod_crop(read_rgb(hr_path)[0], scale)
            lr_file = BENCH / name / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"
            diff = np.abs(imresize(hr, scale=1 / scale).astype(int) - read_rgb(lr_file)[0])
            equal, total, worst = (
                equal + (diff == 0).sum(),
                total + diff.size,
                max(worst, diff.max()),
            )
    assert equal / total >= 0.999 and worst <= 1


@requires_shared("weights", "dscf_ch26_x4.pth")
@pytest.mark.parametrize(
    "file, factory",
    [
        ("span_ch28_x4.pth", span_ch28),
        ("span_tiny_ch26_x4.pth", span_ch26),
        ("dscf_ch26_x4.pth", span_ch26),
    ],
)
def test_released_span_checkpoints_load_strictly(file, factory):
    model = load_weights(factory(4), WEIGHTS / file)
    assert count_parameters(model) == (150_688 if factory is span_ch28 else 130_828)


@pytest.fixture(scope="session")
def span_results(built_once):
    """``span_results(file, sets)``: the released SPAN-Tiny layout's scores, measured once per
    test run (Urban100 takes about a minute) and shared by every xdist worker."""

    def measure(folder, file: str, sets: tuple[str, ...]) -> None:
        model = load_weights(span_ch26(4), WEIGHTS / file)
        scores = evaluate_benchmarks(model, BENCH, list(sets), 4)
        (folder / "scores.json").write_text(json.dumps(scores))

    def scores(file: str, sets: tuple[str, ...]) -> dict:
        folder = built_once(f"{file}-{'-'.join(sets)}", lambda f: measure(f, file, sets))
        return json.loads((folder / "scores.json").read_text())

    return scores


@requires_shared("weights", "dscf_ch26_x4.pth")
@pytest.mark.parametrize("file", list(PAPER))
def test_span_tiny_and_dscf_match_paper_on_set5_set14(span_results, file):
    results = span_results(file, ("Set5", "Set14"))
    for name in ("Set5", "Set14"):
        assert abs(results[name]["psnr"] - PAPER[file][name]) <= 0.03, (name, results[name])


@pytest.mark.slow
@requires_shared("data", "benchmarks", "Urban100")
@pytest.mark.parametrize("file", list(PAPER))
def test_span_tiny_and_dscf_match_paper_on_urban100(span_results, file):
    result = span_results(file, ("Urban100",))["Urban100"]
    assert abs(result["psnr"] - PAPER[file]["Urban100"]) <= 0.03, result


@pytest.mark.slow
@requires_shared("data", "benchmarks", "Urban100")
def test_dscf_beats_span_tiny_on_every_set(span_results):
    for sets in (("Set5", "Set14"), ("Urban100",)):
        tiny, dscf = (
            span_results("span_tiny_ch26_x4.pth", sets),
            span_results("dscf_ch26_x4.pth", sets),
        )
        for name in sets:
            assert dscf[name]["psnr"] > tiny[name]["psnr"], name


@requires_shared("data", "benchmarks", "Set5")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_set5_matches_classic_table(scale):
    result = evaluate_benchmarks(Bicubic(scale), BENCH, ["Set5"], scale)["Set5"]
    assert abs(result["psnr"] - CLASSIC_BICUBIC["Set5"][scale]) <= 0.02


@pytest.mark.slow
@requires_shared("data", "benchmarks", "Urban100")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_urban100_matches_classic_table(scale):
    result = evaluate_benchmarks(Bicubic(scale), BENCH, ["Urban100"], scale)["Urban100"]
    assert abs(result["psnr"] - CLASSIC_BICUBIC["Urban100"][scale]) <= 0.02


@requires_shared("data", "benchmarks", "Set14")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set14_gray_convention_explains_the_classic_numbers(scale):
    """Set14's `bridge` is single-channel: measured as RGB->Y it scores higher than the classic
    table, measured on its own gray values (the classic convention) it matches."""
    as_rgb = evaluate_benchmarks(Bicubic(scale), BENCH, ["Set14"], scale)["Set14"]["psnr"]
    classic = evaluate_benchmarks(Bicubic(scale), BENCH, ["Set14"], scale, gray_as_luma=True)
    assert abs(classic["Set14"]["psnr"] - CLASSIC_BICUBIC["Set14"][scale]) <= 0.02
    assert as_rgb > classic["Set14"]["psnr"] + 0.03


# MCAD-KD Tab. 2: parameters (M) and FLOPs (G, = multiply-accumulates at LR 3x256x256), x4
TAB2 = [
    (edsr_teacher, 43.09, 3293.35),
    (edsr_student, 2.70, 207.28),
    (rcan_teacher, 15.59, 1044.03),
    (rcan_student, 5.17, 366.98),
    (swinir_teacher, 11.90, 861.27),
    (swinir_student, 1.24, 121.48),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "factory, params_m, gflops", TAB2, ids=lambda v: getattr(v, "__name__", "")
)
def test_mcad_tab2_params_and_flops(factory, params_m, gflops):
    model = factory(4)
    assert abs(count_parameters(model) / 1e6 - params_m) / params_m < 0.01
    macs = count_flops(model, (256, 256)) / 2 / 1e9
    assert abs(macs - gflops) / gflops < 0.03
