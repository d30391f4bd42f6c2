"""eval.py / efficiency.py: override names are a contract, errors are one line."""

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from srdistill.cli import efficiency as efficiency_cli
from srdistill.cli import eval as eval_cli
from srdistill.eval.benchmark import evaluate_benchmarks
from srdistill.models.backbones.bicubic import Bicubic
from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.configs import compose_config, model_names
from tests.helpers.images import write_png

CONTRACT_MODELS = [
    "edsr_teacher",
    "edsr_student",
    "rcan_teacher",
    "rcan_student",
    "swinir_teacher",
    "swinir_student",
    "span_ch28",
    "span_ch26",
    "bicubic",
]
LARGE = {"edsr_teacher", "rcan_teacher", "swinir_teacher"}
X4_ONLY = {"sample_teacher"}  # shipped weights exist for x4 only


@pytest.fixture
def tiny_benchmark(tmp_path, photo):
    write_png(tmp_path / "bench" / "Tiny" / "HR" / "a.png", photo)
    write_png(tmp_path / "bench" / "Tiny" / "HR" / "b.png", np.ascontiguousarray(photo[::-1]))
    return tmp_path / "bench"


def test_contract_models_exist():
    assert set(CONTRACT_MODELS) <= set(model_names())


@pytest.mark.parametrize("name", [n for n in model_names() if n not in LARGE])
def test_model_configs_instantiate(name):
    for scale in (4,) if name in X4_ONLY else (2, 3, 4):
        model = instantiate(compose_config("eval", [f"model={name}", f"scale={scale}"]).model)
        assert model.scale == scale


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LARGE))
def test_large_model_configs_instantiate(name):
    assert instantiate(compose_config("eval", [f"model={name}", "scale=4"]).model).scale == 4


def test_eval_writes_json_of_the_documented_form(tiny_benchmark, tmp_path):
    out = tmp_path / "res" / "r.json"
    cfg = compose_config(
        "eval",
        [
            "model=bicubic",
            "scale=2",
            f"data.root={tiny_benchmark}",
            "data.sets=[Tiny]",
            f"out={out}",
        ],
    )
    results = eval_cli.run(cfg)
    written = json.loads(out.read_text())
    assert set(written) == {"Tiny"}
    assert {"psnr", "ssim", "images"} <= set(written["Tiny"]) and written["Tiny"]["images"] == 2
    direct = evaluate_benchmarks(Bicubic(2), tiny_benchmark, ["Tiny"], 2)
    assert written["Tiny"]["psnr"] == direct["Tiny"]["psnr"] == results["Tiny"]["psnr"]


def test_eval_defaults_to_embedded_samples():
    results = eval_cli.run(compose_config("eval", ["scale=4"]))
    assert list(results) == ["SampleVal"] and results["SampleVal"]["images"] == 2
    assert 20 < results["SampleVal"]["psnr"] < 40


def test_missing_set_fails_before_loading_the_model(tiny_benchmark, tmp_path):
    cfg = compose_config(
        "eval",
        [
            "model=span_ch26",
            f"ckpt={tmp_path}/absent.pth",
            f"data.root={tiny_benchmark}",
            "data.sets=[Set5]",
        ],
    )
    with pytest.raises(FileNotFoundError, match="Set5"):
        eval_cli.run(cfg)


def test_bad_checkpoint_is_one_line_and_exit_code_2(tmp_path, tiny_benchmark):
    torch.save({"params": {"conv.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    proc = run_script(
        "eval.py",
        "model=span_ch26",
        f"ckpt={tmp_path / 'other.pth'}",
        f"data.root={tiny_benchmark}",
        "data.sets=[Tiny]",
        f"hydra.run.dir={tmp_path}",
    )
    assert_one_line_error(proc, "span_ch26", "other.pth", "missing")


def test_efficiency_cli_reports_params_and_macs():
    cfg = compose_config("efficiency", ["model=span_ch26", "latency_hw=[16,16]", "repeats=1"])
    result = efficiency_cli.run(cfg)
    assert result["params"] == 130_828
    assert result["macs_g"] == pytest.approx(8.535, abs=0.01)
    assert result["latency_ms"] > 0


def test_without_model_the_file_names_its_network(tiny_benchmark, tmp_path):
    """ckpt= alone scores the network the file holds, as model= + ckpt= does."""
    from srdistill.export_formats import write_state_dict
    from srdistill.models.backbones.span import span_ch26

    torch.manual_seed(0)
    network = span_ch26(2).eval()
    path = write_state_dict(
        network, tmp_path / "w.safetensors", "safetensors", ("span_ch26", {"scale": 2})
    )
    options = [f"ckpt={path}", "scale=2", f"data.root={tiny_benchmark}", "data.sets=[Tiny]"]
    detected = eval_cli.run(compose_config("eval", options))
    named = eval_cli.run(compose_config("eval", ["model=span_ch26", *options]))
    direct = evaluate_benchmarks(network, tiny_benchmark, ["Tiny"], 2)
    assert detected["Tiny"]["psnr"] == named["Tiny"]["psnr"] == direct["Tiny"]["psnr"]
    assert (
        detected["Tiny"]["psnr"]
        != evaluate_benchmarks(Bicubic(2), tiny_benchmark, ["Tiny"], 2)["Tiny"]["psnr"]
    )


def test_without_model_a_checkpoint_only_spandrel_knows_scores_as_model_spandrel(
    tiny_benchmark, tmp_path
):
    """ckpt= alone reads what model=spandrel reads: one loader for every entry point."""
    pytest.importorskip("spandrel")
    from spandrel.architectures.Compact import Compact

    from srdistill.models.spandrel_net import SpandrelNetwork

    network = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).eval()
    torch.save(network.state_dict(), tmp_path / "compact.pth")
    options = [f"ckpt={tmp_path / 'compact.pth'}", "scale=2", f"data.root={tiny_benchmark}"]
    options.append("data.sets=[Tiny]")
    detected = eval_cli.run(compose_config("eval", options))
    named = eval_cli.run(compose_config("eval", ["model=spandrel", *options]))
    direct = evaluate_benchmarks(SpandrelNetwork(network, 2), tiny_benchmark, ["Tiny"], 2)
    assert detected["Tiny"]["psnr"] == named["Tiny"]["psnr"] == direct["Tiny"]["psnr"]
