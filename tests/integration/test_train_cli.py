"""train.py end to end on the embedded sample photos (experiment=smoke), through the real CLI."""

import itertools
import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from srdistill.cli.builders import build_loss
from srdistill.eval.cost import count_flops
from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.configs import CONF_DIR, compose_config
from tests.helpers.training import SMOKE_RUNS, student_state, train, train_process


@pytest.mark.parametrize("loss", list(SMOKE_RUNS))
def test_smoke_run_writes_results_and_checkpoints(smoke_run, loss):
    tmp_path, _ = smoke_run(*SMOKE_RUNS[loss])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["steps"] == 4
    assert 5 < results["val"]["val/SampleVal/psnr_y"] < 40
    assert {"config_hash", "wall_time_s", "teacher"} <= set(results)
    assert results["torch_threads"] == torch.get_num_threads()
    environment = results["environment"]
    assert torch.__version__.startswith(environment["torch"])  # 2.x.y of 2.x.y+cu130
    assert environment["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    tags = {"table": None, "backbone": "tiny", "method": loss, "scale": 2, "seed": 0}
    assert results["tags"] == tags
    student = instantiate(compose_config("train", ["experiment=smoke"]).student.arch)
    assert results["params"] == sum(p.numel() for p in student.parameters())
    # the papers' FLOPs: multiply-accumulates at LR 3x256x256. By hand: 3->16, 5 x 16->16 and
    # 16->64 3x3 convolutions at 256x256, then 16->3 at the x2 output's 512x512
    assert results["flops_g"] == count_flops(student, (256, 256)) / 2e9
    by_hand = 9 * (3 * 16 + 5 * 16 * 16 + 16 * 64) * 256**2 + 9 * 16 * 3 * 512**2
    assert results["flops_g"] == pytest.approx(by_hand / 1e9)
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert list((tmp_path / "samples").glob("step_*.png"))
    metrics = (tmp_path / "csv").rglob("metrics.csv")
    header = next(metrics).read_text().splitlines()[0]
    assert "train/loss/rec" in header and "val/SampleVal/psnr_y" in header
    if loss == "mcad":
        for key in (
            "train/loss/cont/img",
            "train/loss/cont/patch",
            "train/tau",
            "train/d_real",
            "train/loss/adv",
        ):
            assert key in header


def test_bad_teacher_checkpoint_is_one_line(tmp_path):
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pth")
    proc = run_script(
        "train.py",
        "experiment=smoke",
        f"teacher.ckpt={tmp_path / 'bad.pth'}",
        f"hydra.run.dir={tmp_path}",
    )
    assert_one_line_error(proc, "teacher", "bad.pth")


def test_resuming_from_a_file_that_pickles_code_is_refused(tmp_path):
    import argparse

    bad = tmp_path / "last.ckpt"
    torch.save({"global_step": 1, "state": argparse.Namespace(x=1)}, bad)
    proc = run_script(
        "train.py", "experiment=smoke", f"ckpt_path={bad}", f"hydra.run.dir={tmp_path}"
    )
    assert_one_line_error(proc, "ckpt_path", "last.ckpt")


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    common = ["loss=mcad", "trainer.deterministic=true", "seed=3"]
    train(tmp_path / "whole", *common, "trainer.max_steps=4")
    train(tmp_path / "part", *common, "trainer.max_steps=2")
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    train(tmp_path / "resumed", *common, "trainer.max_steps=4", f"ckpt_path={last}")
    whole = student_state(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    resumed = student_state(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    part = student_state(last)
    assert whole.keys() == resumed.keys()
    assert any(not torch.equal(part[k], whole[k]) for k in whole)  # it did train further
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


@pytest.mark.slow
def test_released_variant_and_wandb_offline(tmp_path):
    train_process(tmp_path, "loss=mcad_released", "logger=wandb")
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def sweep_params(experiment: str) -> dict[str, list[str]]:
    params = compose_config("train", [f"experiment={experiment}"], hydra=True).hydra.sweeper.params
    return {key: str(values).split(",") for key, values in params.items()}


def sweep_jobs(experiment: str, params: dict[str, list[str]]) -> list[list[str]]:
    """Every job of the sweep: the product of its parameters' values."""
    return [
        [f"experiment={experiment}", *(f"{k}={v}" for k, v in zip(params, combo, strict=True))]
        for combo in itertools.product(*params.values())
    ]


def covering_jobs(experiment: str, params: dict[str, list[str]]) -> list[list[str]]:
    """As few jobs as hold every value of every parameter at least once (job i takes value
    i mod n of each parameter): the fast suite's share of the sweep."""
    count = max(len(values) for values in params.values())
    return [
        [f"experiment={experiment}", *(f"{k}={v[i % len(v)]}" for k, v in params.items())]
        for i in range(count)
    ]


def check_sweep_job(experiment: str, overrides: list[str]) -> None:
    cfg = compose_config("train", overrides)
    assert cfg.tags.table == experiment  # results.json and the loggers say which table
    loss = build_loss(cfg.loss)
    assert "rec" in loss.terms
    assert cfg.teacher.arch._target_ and cfg.student.arch._target_
    if loss.needs_discriminator:
        assert instantiate(cfg.loss.discriminator) is not None
    if cfg.get("lora"):
        assert instantiate(cfg.lora).apply(instantiate(cfg.student.arch))


SWEEPS = sorted(
    p.stem for p in (CONF_DIR / "experiment").glob("*.yaml") if "sweeper:" in p.read_text()
)


def test_the_paper_tables_have_sweeps():
    mcad = {f"mcad_tab{i}" for i in range(3, 9)}
    dsclora = {f"dsclora_tab{i}" for i in range(5, 9)}
    assert mcad | dsclora <= set(SWEEPS)


@pytest.mark.parametrize("experiment", SWEEPS)
def test_every_value_of_every_sweep_parameter_composes_and_builds_its_loss(experiment):
    params = sweep_params(experiment)
    assert len(sweep_jobs(experiment, params)) >= 2
    assert len({int(seed) for seed in params.get("seed", [0])}) == len(params.get("seed", [0]))
    for overrides in covering_jobs(experiment, params):
        check_sweep_job(experiment, overrides)


@pytest.mark.slow  # about 200 compositions; the fast test above covers every value once
@pytest.mark.parametrize("experiment", SWEEPS)
def test_every_sweep_job_composes_and_builds_its_loss(experiment):
    for overrides in sweep_jobs(experiment, sweep_params(experiment)):
        check_sweep_job(experiment, overrides)


def test_missing_data_folder_is_one_line_before_any_training(tmp_path):
    proc = run_script(
        "train.py", "data=folder", f"data.root={tmp_path / 'absent'}", f"hydra.run.dir={tmp_path}"
    )
    assert_one_line_error(proc, "absent", "data root")
    assert not list((tmp_path / "checkpoints").glob("*.ckpt"))  # checked writable, still empty


@pytest.mark.slow
def test_default_run_distils_from_the_shipped_teacher_and_prints_the_table(tmp_path):
    proc = train_default(tmp_path, "trainer.max_steps=3", "trainer.val_check_interval=3")
    rows = {line.split("  ")[0]: line for line in proc.stdout.splitlines()}
    for name in ("bicubic", "teacher", "student without teacher", "student distilled"):
        assert name in rows, proc.stdout[-2000:]
    assert "gain of distillation" in rows and "upscale your own photos" in proc.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    comparison = results["comparison"]
    # the shipped teacher is clearly better than bicubic on the held-out photos
    assert (
        comparison["teacher"]["SampleVal"]["psnr"]
        > comparison["bicubic"]["SampleVal"]["psnr"] + 0.5
    )
    assert results["teacher"]["arch"] == "sample_teacher"
    # the control arm trained as long as the distilled one, into its own folder
    assert results["without_teacher"]["steps"] == results["steps"] == 3
    assert (tmp_path / "without_teacher" / "checkpoints" / "last.ckpt").exists()
    gain = comparison["student"]["SampleVal"]["psnr"]
    gain -= comparison["student without teacher"]["SampleVal"]["psnr"]
    assert f"{gain:+.4f} dB" in rows["gain of distillation"]


def train_default(run_dir: Path, *overrides: str):
    proc = run_script("train.py", f"hydra.run.dir={run_dir}", *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc
