"""Crafted checkpoints through every load path of the real entry points: a file is data, never
code. Each hostile file would create a marker file if anything in it were run; every case must
end with exit code 2, one ``error:`` line naming the file and the option, and no marker."""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path

import pytest
import torch

from srdistill.models.backbones.edsr import EDSR
from tests.helpers.cli import assert_one_line_error, run_script

SMOKE = ("train.py", "experiment=smoke", "num_workers=0")
# entry point and arguments -> the option that names the file
LOAD_PATHS = {
    "eval ckpt": (("eval.py", "model=edsr_tiny_student", "scale=2"), "ckpt"),
    "train teacher.ckpt": (SMOKE, "teacher.ckpt"),
    "train student.ckpt": (SMOKE, "student.ckpt"),
    "train ckpt_path": (SMOKE, "ckpt_path"),
    "export ckpt": (("export.py",), "ckpt"),
}


class TouchOnLoad:
    """The classic pickle payload: unpickling it calls ``Path.touch(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def run_load_path(name: str, path: Path, tmp_path: Path):
    (script, *args), option = LOAD_PATHS[name]
    extra = [f"out={tmp_path / 'exported.pth'}"] if script == "export.py" else []
    return run_script(
        script, *args, f"{option}={path}", *extra, f"hydra.run.dir={tmp_path / 'run'}"
    )


def tiny_student_state() -> dict[str, torch.Tensor]:
    """The weights of ``edsr_tiny_student`` at the smoke scale (x2)."""
    torch.manual_seed(0)
    return EDSR(scale=2, num_feat=16, num_block=2).state_dict()


def run_checkpoint(student_build: dict) -> dict:
    """A file shaped like a train.py checkpoint that torch.load(weights_only=True) accepts."""
    return {
        "state_dict": {f"student.{k}": v for k, v in tiny_student_state().items()},
        "global_step": 4,
        "loops": {},
        "student_build": student_build,
    }


# every load path with torch.save; a raw pickle.dump file (another pickle protocol) through
# the cheapest paths, as it meets the same reader
PICKLE_CASES = [(path, "torch.save") for path in LOAD_PATHS] + [
    ("eval ckpt", "pickle.dump"),
    ("export ckpt", "pickle.dump"),
]


@pytest.mark.parametrize("load_path,writer", PICKLE_CASES)
def test_a_pickle_that_runs_code_is_refused(tmp_path, load_path, writer):
    marker, hostile = tmp_path / "MARKER", tmp_path / "hostile.ckpt"
    payload = {
        "state_dict": {"student.w": torch.zeros(1)},
        "global_step": 1,
        "loops": {},
        "payload": TouchOnLoad(marker),
    }
    if writer == "torch.save":
        torch.save(payload, hostile)
    else:
        with open(hostile, "wb") as f:
            pickle.dump(payload, f)
    proc = run_load_path(load_path, hostile, tmp_path)
    assert_one_line_error(proc, f"{LOAD_PATHS[load_path][1]}={hostile}", "never unpickles code")
    assert not marker.exists()


def hostile_records(marker: Path, source: Path, evil_pickle: Path) -> dict[str, dict]:
    """Build records naming callables, in the old (resolved config) and the new (plain) form."""
    tiny_args = {"scale": 2, "num_feat": 16, "num_block": 2}
    tiny = {"model": "edsr_tiny_student", "model_args": tiny_args}
    legacy_tiny = {"_target_": "srdistill.models.backbones.edsr.EDSR", **tiny_args}
    return {
        "old os.system": {"arch": {"_target_": "os.system", "_args_": [f"touch {marker}"]}},
        "old builtins.open": {
            "arch": {"_target_": "builtins.open", "file": str(marker), "mode": "w"}
        },
        "old shutil.copyfile": {
            "arch": {"_target_": "shutil.copyfile", "src": str(source), "dst": str(marker)}
        },
        "old torch.load": {
            "arch": {"_target_": "torch.load", "f": str(evil_pickle), "weights_only": False}
        },
        "old lora os.system": {
            "arch": legacy_tiny,
            "lora": {"_target_": "os.system", "_args_": [f"touch {marker}"]},
        },
        "new os.system": {"model": "os.system", "model_args": {"command": f"touch {marker}"}},
        "new shutil.copyfile": {
            "model": "shutil.copyfile",
            "model_args": {"src": str(source), "dst": str(marker)},
        },
        "new _target_ in args": {
            "model": "edsr_tiny_student",
            "model_args": {"_target_": "builtins.open", "file": str(marker), "mode": "w"},
        },
        "new callable as argument": {**tiny, "model_args": {"scale": 2, "act_layer": "os.system"}},
        "new lora _target_": {
            **tiny,
            "lora": {"_target_": "torch.load", "f": str(evil_pickle), "weights_only": False},
        },
        "new lora option": {
            **tiny,
            "lora": {"targets": [{"pattern": "conv_first", "rank": 2}], "a_init": "os.system"},
        },
    }


CASES = list(hostile_records(Path("marker"), Path("source"), Path("pickle")))


@pytest.mark.parametrize("case", CASES)
def test_export_never_calls_what_a_build_record_names(tmp_path, case):
    marker, source = tmp_path / "MARKER", tmp_path / "source.txt"
    source.write_text("copy me")
    evil_pickle = tmp_path / "evil.pkl"
    with open(evil_pickle, "wb") as f:
        pickle.dump(TouchOnLoad(marker), f)
    hostile = tmp_path / "last.ckpt"
    torch.save(run_checkpoint(hostile_records(marker, source, evil_pickle)[case]), hostile)
    torch.load(hostile, weights_only=True)  # the file itself passes the weights-only reader
    proc = run_load_path("export ckpt", hostile, tmp_path)
    assert_one_line_error(proc, f"ckpt={hostile}", "student_build")
    assert not marker.exists()
    assert not (tmp_path / "exported.pth").exists()


def test_a_plain_record_of_the_same_file_exports(tmp_path):
    """The control for the cases above: only the record differs, and a plain one works."""
    record = {
        "model": "edsr_tiny_student",
        "model_args": {"scale": 2, "num_feat": 16, "num_block": 2},
        "lora": None,
        "average_weight": None,
    }
    torch.save(run_checkpoint(record), tmp_path / "last.ckpt")
    proc = run_load_path("export ckpt", tmp_path / "last.ckpt", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    exported = torch.load(tmp_path / "exported.pth", weights_only=True)
    for key, value in tiny_student_state().items():
        assert torch.equal(exported[key], value), key


def test_diverged_weights_are_never_exported(tmp_path):
    record = {
        "model": "edsr_tiny_student",
        "model_args": {"scale": 2, "num_feat": 16, "num_block": 2},
        "lora": None,
        "average_weight": None,
    }
    checkpoint = run_checkpoint(record)
    checkpoint["state_dict"]["student.conv_last.bias"] = torch.full((3,), float("nan"))
    torch.save(checkpoint, tmp_path / "last.ckpt")
    proc = run_load_path("export ckpt", tmp_path / "last.ckpt", tmp_path)
    assert_one_line_error(proc, "last.ckpt", "non-finite", "conv_last.bias")
    assert not (tmp_path / "exported.pth").exists()


def test_resuming_from_a_record_naming_code_without_a_run_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    hostile = tmp_path / "last.ckpt"
    crafted = run_checkpoint({"arch": {"_target_": "os.system", "_args_": [f"touch {marker}"]}})
    del crafted["loops"]
    torch.save(crafted, hostile)
    proc = run_load_path("train ckpt_path", hostile, tmp_path)
    assert_one_line_error(proc, f"ckpt_path={hostile}", "not a srdistill training checkpoint")
    assert not marker.exists()


def test_resuming_from_a_weights_file_says_to_use_student_ckpt(tmp_path):
    weights = tmp_path / "student.pth"
    torch.save(tiny_student_state(), weights)
    proc = run_load_path("train ckpt_path", weights, tmp_path)
    assert_one_line_error(proc, f"ckpt_path={weights} is a weights file", f"student.ckpt={weights}")
    # the folder is created (and proved writable) up front; nothing was trained into it
    assert not list((tmp_path / "run" / "checkpoints").glob("*.ckpt"))
