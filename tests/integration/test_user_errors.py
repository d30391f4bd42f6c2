"""Bad options and unusable places, tried through the real entry points as a user would.

Each case must end with exit code 2 and one ``error: ...`` line naming the option or file, before
any training or evaluation has started (the checks run first, so every case takes seconds).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from srdistill.models.backbones.edsr import EDSR
from tests.helpers.cli import assert_one_line_error, run_process, run_script


def _a_file(tmp: Path) -> Path:
    blocker = tmp / "plain-file"
    blocker.write_text("not a folder")
    return blocker


def _tiny_student_weights(tmp: Path) -> Path:
    path = tmp / "tiny_student.pth"
    torch.save(EDSR(scale=2, num_feat=16, num_block=2).state_dict(), path)
    return path


def _nan_weights(tmp: Path) -> Path:
    state = EDSR(scale=2, num_feat=16, num_block=2).state_dict()
    state["conv_first.weight"].fill_(math.nan)
    path = tmp / "diverged.pth"
    torch.save(state, path)
    return path


def _blocked_checkpoints(tmp: Path) -> Path:
    (tmp / "run").mkdir()
    (tmp / "run" / "checkpoints").write_text("a file where the checkpoint folder goes")
    return tmp / "run"


SMOKE = ("train.py", "experiment=smoke")

# (id, script and overrides as a function of tmp_path, words the error line must contain)
CASES = [
    ("unknown-config-option", lambda t: ("train.py", "loss=foo"), ["loss/foo", "mcad", "kd"]),
    ("unknown-key", lambda t: ("train.py", "trainer.max_stepz=3"), ["max_stepz", "+"]),
    ("override-syntax", lambda t: ("train.py", "optimizer.lr=abc("), ["abc("]),
    *[
        (f"override-{name}", lambda t, o=override: ("train.py", o), [f"override {override!r}"])
        for name, override in [
            ("semicolon", "a=b;c"),
            ("backticks", "tags.method=`id`"),
            ("command-substitution", "tags.method=$(id)"),
            ("unbalanced-quote", "tags.method='x"),
            ("unbalanced-bracket", "tags.method=[1,2"),
        ]
    ],
    ("sweep-override-semicolon", lambda t: ("train.py", "-m", "seed=0,1;2"), ["'seed=0,1;2'"]),
    *[
        # what `$KEY=1` gives when KEY is unset: Hydra raised a bare ValueError
        (f"{script[:-3]}-override-without-key", lambda t, s=script: (s, "=1"), ["'=1'", "no key"])
        for script in ("train.py", "eval.py", "export.py")
    ],
    ("eval-unknown-model", lambda t: ("eval.py", "model=edsr_huge"), ["model/edsr_huge"]),
    ("train-scale-zero", lambda t: (*SMOKE, "scale=0"), ["scale=0"]),
    ("train-negative-max-steps", lambda t: (*SMOKE, "trainer.max_steps=-5"), ["max_steps", "-5"]),
    ("eval-scale-zero", lambda t: ("eval.py", "model=bicubic", "scale=0"), ["scale=0"]),
    ("efficiency-scale-negative", lambda t: ("efficiency.py", "scale=-1"), ["scale=-1"]),
    ("mandatory-data-root", lambda t: (*SMOKE, "data=folder"), ["data.root", "not set"]),
    ("mcad-batch-one", lambda t: (*SMOKE, "loss=mcad", "batch_size=1"), ["batch_size=1"]),
    (
        "mcad-patch-smaller-than-windows",
        lambda t: (*SMOKE, "loss=mcad", "data.lr_patch_size=8"),
        ["data.lr_patch_size", "48"],
    ),
    (
        "missing-student-file",
        lambda t: (*SMOKE, f"student.ckpt={t / 'nope.pth'}"),
        ["student.ckpt", "nope.pth"],
    ),
    (
        "run-folder-not-creatable",
        lambda t: (*SMOKE, f"hydra.run.dir={_a_file(t) / 'run'}"),
        ["hydra.run.dir", "plain-file"],
    ),
    (
        "sweep-folder-not-creatable",
        lambda t: ("train.py", "-m", *SMOKE[1:], f"hydra.sweep.dir={_a_file(t) / 'sweep'}"),
        ["hydra.sweep.dir", "plain-file"],
    ),
    (
        "checkpoint-folder-not-writable",
        lambda t: (*SMOKE, f"hydra.run.dir={_blocked_checkpoints(t)}"),
        ["dirpath", "checkpoints"],
    ),
    (
        "eval-out-not-writable",
        lambda t: ("eval.py", f"out={_a_file(t) / 'results.json'}"),
        ["out", "plain-file"],
    ),
    ("eval-out-is-a-folder", lambda t: ("eval.py", f"out={t}"), ["out=", "folder"]),
    (
        "efficiency-out-not-writable",
        lambda t: ("efficiency.py", "latency_hw=null", f"out={_a_file(t) / 'e.json'}"),
        ["out", "plain-file"],
    ),
    (
        "eval-non-finite-weights",
        lambda t: ("eval.py", "model=edsr_tiny_student", "scale=2", f"ckpt={_nan_weights(t)}"),
        ["diverged.pth", "non-finite", "conv_first.weight"],
    ),
    (
        "lora-rank-above-layer",
        lambda t: (
            *SMOKE,
            "loss=scratch",
            "lora=lora",
            f"student.ckpt={_tiny_student_weights(t)}",
            "lora.targets=[{pattern: 'body\\.\\d+\\.conv1', rank: 32}]",
        ),
        ["rank 32", "body.0.conv1", "16"],
    ),
    (
        "eval-switch-not-a-bool",
        lambda t: ("eval.py", "self_ensemble=maybe"),
        ["self_ensemble='maybe'", "true or false"],
    ),
    (
        "train-switch-not-a-bool",
        lambda t: (*SMOKE, "module.val_self_ensemble=7"),
        ["module.val_self_ensemble=7", "true or false"],
    ),
    (
        "teacher-autocast-unknown",
        lambda t: (*SMOKE, "perf.teacher_autocast=fp8"),
        ["perf.teacher_autocast='fp8'", "bf16"],
    ),
    (
        "persistent-workers-without-workers",
        lambda t: (*SMOKE, "perf.persistent_workers=true"),
        ["perf.persistent_workers", "num_workers=0"],
    ),
]


@pytest.mark.parametrize("make_args,needles", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(tmp_path, make_args, needles):
    proc = run_script(*case_args(make_args, tmp_path))
    assert "Traceback" not in proc.stderr
    assert_one_line_error(proc, *needles)


def case_args(make_args, tmp_path: Path) -> list[str]:
    script, *overrides = make_args(tmp_path)
    if script == "train.py" and not any(o.startswith("hydra.run.dir=") for o in overrides):
        overrides.append(f"hydra.run.dir={tmp_path / 'run'}")
    return [script, *overrides]


# cases whose check runs after torch, Lightning and the models have loaded (train, train with
# LoRA, eval): what only a fresh interpreter prints (import-time warnings) would show here
IN_A_PROCESS = {"mcad-batch-one", "lora-rank-above-layer", "eval-non-finite-weights"}


@pytest.mark.slow  # each case starts Python, torch and Lightning
@pytest.mark.parametrize(
    "make_args", [pytest.param(c[1], id=c[0]) for c in CASES if c[0] in IN_A_PROCESS]
)
def test_a_real_process_prints_the_same_line(tmp_path, make_args):
    (tmp_path / "here").mkdir(), (tmp_path / "there").mkdir()
    here = run_script(*case_args(make_args, tmp_path / "here"))
    there = run_process(*case_args(make_args, tmp_path / "there"))
    assert there.returncode == here.returncode == 2
    assert there.stderr.replace(str(tmp_path / "there"), str(tmp_path / "here")) == here.stderr


def test_a_wandb_tag_over_64_characters_is_refused_before_any_model_is_built(tmp_path):
    long_table = "t" * 70  # the W&B tag is table=<value>: 76 characters
    run = tmp_path / "run"
    proc = run_script(
        *SMOKE,
        "logger=wandb",
        f"tags.table={long_table}",
        f"hydra.run.dir={run}",
        env={"WANDB_MODE": "offline"},
    )
    assert_one_line_error(proc, "tags.table", "76 characters", "64")
    assert not (run / "checkpoints").exists() and not (run / "wandb").exists()


def test_a_project_name_w_and_b_refuses_is_one_line_before_any_model_is_built(tmp_path):
    run = tmp_path / "run"
    proc = run_script(
        *SMOKE,
        "logger=wandb",
        "logger.0.project=my/proj",
        f"hydra.run.dir={run}",
        env={"WANDB_MODE": "offline"},
    )
    assert_one_line_error(proc, "logger.0.project='my/proj'", "W&B project name")
    assert not (run / "checkpoints").exists() and not (run / "wandb").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the GPU recipe is valid")
def test_gpu_recipe_without_a_gpu_says_to_add_trainer_cpu(tmp_path):
    proc = run_script(
        "train.py", "experiment=dsclora", f"data.root={tmp_path}", f"hydra.run.dir={tmp_path}"
    )
    assert_one_line_error(proc, "trainer=gpu", "trainer=cpu")
