"""srdistill as a user installs it with ``pip install .``: the wheel, installed into a new virtual
environment, run as ``srdistill-train``, ``-eval`` and ``-export`` from a folder that is not the
repository, with the configs the wheel ships and a config folder of the user's own.

The new environment takes its dependencies from this one (a ``.pth`` file naming this
environment's site-packages, whose own ``.pth`` files, among them a developer's editable install
of srdistill, Python does not read from there), so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.shared import REPO_ROOT

pytestmark = pytest.mark.slow

# what a wheel is built from; a copy keeps build/ and *.egg-info out of the checkout
BUILD_INPUTS = ("pyproject.toml", "README.md", "src", "conf")
# a loss config group file of the user's own, selected as loss=mine
MY_LOSS = """\
terms:
  rec:
    weight: 0.5
    loss: {_target_: srdistill.losses.pixel.ReconstructionLoss, criterion: l1}
discriminator: null
"""


def without_the_checkout() -> dict[str, str]:
    """This environment, less a ``PYTHONPATH`` that could put the checkout's src/ first."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def build_wheel(folder: Path) -> Path:
    source = folder / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (REPO_ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(REPO_ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    pip_wheel = ["wheel", "--no-deps", "--no-build-isolation", "-w", str(folder / "dist"), "."]
    pip(pip_wheel, cwd=source)
    return next((folder / "dist").glob("srdistill-*.whl"))


def pip(args: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        cwd=cwd,
        env=without_the_checkout(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def new_venv_with_this_ones_dependencies(venv: Path) -> Path:
    """A virtual environment without pip or srdistill, which imports this one's packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    ours = dict.fromkeys(sysconfig.get_path(key) for key in ("purelib", "platlib"))
    (Path(proc.stdout.strip()) / "deps.pth").write_text("".join(f"{p}\n" for p in ours))
    return python


def build_and_install(folder: Path) -> None:
    wheel = build_wheel(folder)
    python = new_venv_with_this_ones_dependencies(folder / "venv")
    # this pip, run by the new interpreter: the commands' first line names that interpreter
    install = ["install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)]
    pip(["--python", str(python), *install])


@pytest.fixture(scope="session")
def installed(built_once) -> tuple[Path, Path]:
    """(the installed commands' folder, the wheel): the wheel built from this checkout and
    installed, console commands included, into a new virtual environment."""
    folder = built_once("installed_wheel", build_and_install)
    return folder / "venv" / "bin", next((folder / "dist").glob("srdistill-*.whl"))


@pytest.fixture
def user_folder(tmp_path):
    """A folder outside the repository, as a user's working folder."""
    (tmp_path / "mine" / "loss").mkdir(parents=True)
    (tmp_path / "mine" / "loss" / "mine.yaml").write_text(MY_LOSS)
    return tmp_path


def run(bin_dir: Path, command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """An installed command in a real process, with nothing of the checkout on its path."""
    env = {**without_the_checkout(), "WANDB_MODE": "offline"}
    return subprocess.run(
        [str(bin_dir / command), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_the_wheel_ships_every_config_of_conf(installed):
    _, wheel = installed
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if n.startswith("srdistill/conf/")}
    on_disk = {
        f"srdistill/conf/{p.relative_to(REPO_ROOT / 'conf').as_posix()}"
        for p in (REPO_ROOT / "conf").rglob("*")
        if p.suffix in (".yaml", ".py")
    }
    assert shipped == on_disk
    assert "srdistill/conf/train.yaml" in shipped


def test_the_commands_import_the_installed_package(installed, user_folder):
    bin_dir, _ = installed
    code = "import srdistill, srdistill.conf; print(srdistill.__file__, srdistill.conf.__file__)"
    proc = run(bin_dir, "python", "-c", code, cwd=user_folder)
    assert proc.returncode == 0, proc.stderr
    venv = bin_dir.parent.resolve()
    for path in proc.stdout.split():
        assert Path(path).resolve().is_relative_to(venv), path


def test_srdistill_train_and_export_run_from_any_folder(installed, user_folder):
    bin_dir, _ = installed
    proc = run(bin_dir, "srdistill-train", "experiment=smoke", "hydra.run.dir=run", cwd=user_folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = user_folder / "run"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["steps"] == 4 and results["tags"]["backbone"] == "tiny"
    assert (run_dir / "train.log").is_file()  # the job named train, as by train.py

    ckpt = f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}"
    proc = run(bin_dir, "srdistill-export", ckpt, "out=installed.safetensors", cwd=user_folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out, export_dir = user_folder / "checkout.safetensors", user_folder / "export"
    checkout = run_script("export.py", ckpt, f"out={out}", f"hydra.run.dir={export_dir}")
    assert checkout.returncode == 0, checkout.stderr[-3000:]
    ours, theirs = load_file(user_folder / "installed.safetensors"), load_file(out)
    assert ours.keys() == theirs.keys()
    assert all(ours[k].equal(theirs[k]) for k in ours)


def test_srdistill_eval_scores_as_eval_py_does(installed, user_folder):
    bin_dir, _ = installed
    args = ["model=bicubic", "hydra.run.dir=eval_installed", "out=installed.json"]
    proc = run(bin_dir, "srdistill-eval", *args, cwd=user_folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out, eval_dir = user_folder / "checkout.json", user_folder / "eval_checkout"
    checkout = run_script("eval.py", "model=bicubic", f"hydra.run.dir={eval_dir}", f"out={out}")
    assert checkout.returncode == 0, checkout.stderr[-3000:]
    ours = json.loads((user_folder / "installed.json").read_text())
    theirs = json.loads(out.read_text())
    assert set(ours) == set(theirs) == {"SampleVal"}
    for key in ("psnr", "ssim", "psnr_rgb", "images"):
        assert ours["SampleVal"][key] == theirs["SampleVal"][key], key


@pytest.mark.parametrize(
    "where", [["--config-dir", "mine"], ["hydra.searchpath=[file://mine]"]], ids=["flag", "option"]
)
def test_a_config_folder_of_the_users_own_adds_its_options(installed, user_folder, where):
    bin_dir, _ = installed
    args = [*where, "loss=mine", "--cfg", "job", "--package", "loss"]
    proc = run(bin_dir, "srdistill-train", *args, cwd=user_folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert yaml.safe_load(proc.stdout)["terms"] == yaml.safe_load(MY_LOSS)["terms"]


def test_a_mistyped_option_is_one_line_and_exit_2(installed, user_folder):
    bin_dir, _ = installed
    proc = run(bin_dir, "srdistill-train", "loss=nonexistent", cwd=user_folder)
    assert_one_line_error(proc, "loss/nonexistent", "available options: at,")
