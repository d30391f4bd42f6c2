"""The user plugin of examples/plugin (docs/GUIDE.md, "Extending srdistill"): a plain PyTorch
student, taps by module path, a loss term of its own and the export of its run, through the
documented commands (in this process, with tiny settings; one real process in the slow suite)."""

from __future__ import annotations

import csv
import doctest
import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from tests.helpers.cli import assert_one_line_error, run_process, run_script
from tests.helpers.shared import REPO_ROOT

PLUGIN = REPO_ROOT / "examples" / "plugin"
SEARCHPATH = "hydra.searchpath=[file://examples/plugin/conf]"
PAIR = "backbone=mysr_sample"
EDGE = ["+loss.terms.edge.weight=0.1", "+loss.terms.edge.loss._target_=mysr.terms.EdgeKD"]
# seconds instead of minutes: one step on small patches, one validation image, no closing table
TINY = [
    "trainer.max_steps=1",
    "trainer.val_check_interval=1",
    "+trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "batch_size=2",
    "data.lr_patch_size=12",
    "final_table=false",
]
# parameters the student's taps (blocks.1, fuse) do not reach: after the body
AFTER_TAPS = ("upsample.", "tail.")


@pytest.fixture(scope="module")
def plugin_path():
    """The plugin importable, as ``PYTHONPATH=examples/plugin`` makes it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(PLUGIN))
        yield PLUGIN


def train(run_dir, *overrides: str):
    proc = run_script("train.py", SEARCHPATH, PAIR, *overrides, *TINY, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "results.json").read_text())["steps"] == 1
    return run_dir / "checkpoints" / "last.ckpt"


def logged(run_dir) -> dict[str, list[float]]:
    """Every metric of the run's CSV log: its logged values, in step order."""
    text = next((run_dir / "csv").rglob("metrics.csv")).read_text()
    rows = list(csv.DictReader(text.splitlines()))
    return {key: [float(r[key]) for r in rows if r[key]] for key in rows[0]}


def student_weights(ckpt) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    return {k.removeprefix("student."): v for k, v in state.items() if k.startswith("student.")}


@pytest.fixture(scope="module")
def edge_run(plugin_path, tmp_path_factory):
    """``loss=kd`` plus the plugin's EdgeKD term, trained once for the tests below."""
    run_dir = tmp_path_factory.mktemp("edge_run")
    return train(run_dir, "loss=kd", *EDGE)


def test_the_edge_term_obeys_its_documented_examples(plugin_path):
    import mysr.terms

    assert doctest.testmod(mysr.terms).failed == 0


def test_edge_kd_is_zero_for_equal_edges_and_the_mean_edge_difference_otherwise(plugin_path):
    from mysr.terms import EdgeKD

    from srdistill.losses.context import StepContext
    from srdistill.losses.term import TermContract

    torch.manual_seed(0)
    sr_t = torch.rand(2, 3, 8, 8)
    term = EdgeKD()
    # a brightness offset keeps every edge
    offset = StepContext(lq=sr_t, gt=sr_t, sr_s=sr_t + 0.2, sr_t=sr_t)
    assert term(offset).item() == pytest.approx(0.0, abs=1e-6)
    # a ramp of slope 1 across the 8 columns adds 1 to the x-gradient of the 6 inner columns and
    # 0.5 at the 2 replicated borders, nothing to the y-gradient: (6 + 2 * 0.5) / 8 / 2
    ramp = torch.arange(8.0).expand(2, 3, 8, 8)
    sharper = StepContext(lq=sr_t, gt=sr_t, sr_s=sr_t + ramp, sr_t=sr_t)
    assert term(sharper).item() == pytest.approx(7 / 16, abs=1e-5)
    assert TermContract.of(term).needs_teacher
    assert set(term.logged_values()) == {"student_edges", "teacher_edges"}


def test_module_path_taps_of_the_plain_network_give_its_features(plugin_path):
    from mysr.networks import ResidualSR

    from srdistill.models.taps import forward_with_taps

    net = ResidualSR(scale=4, num_feat=8, num_block=2)
    x = torch.rand(1, 3, 6, 5)
    out, feats = forward_with_taps(net, x, ["blocks.1", "fuse"])
    assert torch.equal(out, net(x)) and out.shape == (1, 3, 24, 20)
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "blocks.1": (1, 8, 6, 5),
        "fuse": (1, 8, 6, 5),
    }
    assert torch.equal(feats["fuse"], net.fuse(net.blocks(net.head(x))))


def test_fakd_on_module_path_taps_trains_the_student_up_to_its_taps(plugin_path, tmp_path):
    from mysr.networks import ResidualSR

    # only the feature term: its gradient reaches exactly the layers before the student's taps
    torch.manual_seed(0)
    start = ResidualSR(scale=4).state_dict()
    torch.save(start, tmp_path / "start.pth")
    only_sa = ["loss=fakd", "~loss.terms.rec", "~loss.terms.resp"]
    ckpt = train(tmp_path / "run", *only_sa, f"student.ckpt={tmp_path / 'start.pth'}")
    sa = logged(tmp_path / "run")["train/loss/sa"]
    assert len(sa) == 1 and all(math.isfinite(v) and v > 0 for v in sa)
    trained = student_weights(ckpt)
    assert trained.keys() == start.keys()
    for name, tensor in trained.items():
        moved = not torch.equal(tensor, start[name])
        assert moved != name.startswith(AFTER_TAPS), name


def test_the_edge_term_is_logged_with_its_values(edge_run):
    metrics = logged(edge_run.parent.parent)
    for key in (
        "train/loss/edge",
        "train/loss/edge/student_edges",
        "train/loss/edge/teacher_edges",
    ):
        assert len(metrics[key]) == 1 and all(math.isfinite(v) for v in metrics[key]), key
    assert all(v > 0 for v in metrics["train/loss/edge"])


def test_the_export_of_a_plugin_run_holds_the_runs_student(plugin_path, edge_run, tmp_path):
    from mysr.networks import ResidualSR

    out = tmp_path / "student.safetensors"
    args = (SEARCHPATH, f"ckpt={edge_run}", "model=mysr_student", f"out={out}")
    proc = run_script("export.py", *args)  # the format is the one the file name says
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "verified safetensors: max abs difference 0 " in proc.stdout
    with safe_open(str(out), "pt") as f:
        assert not f.metadata()  # srdistill names no architecture for the user's code
    exported, trained = ResidualSR(scale=4), ResidualSR(scale=4)
    exported.load_state_dict(load_file(str(out)), strict=True)
    trained.load_state_dict(student_weights(edge_run), strict=True)
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        assert torch.equal(exported.eval()(x), trained.eval()(x))
    assert not torch.equal(trained.tail.weight, torch.zeros_like(trained.tail.weight))


@pytest.mark.parametrize(
    "options, needles",
    [
        ((), ["never names code", "model=<its conf/model name>"]),  # the file names no code
        (("model=mysr_student", "scale=2"), ["x4 run, not x2", "scale=4"]),
        (("model=mysr_student", "model.num_feat=16"), ["does not fit model=", "head.weight"]),
    ],
)
def test_a_plugin_run_exported_wrongly_is_one_line(
    plugin_path, edge_run, tmp_path, options, needles
):
    out = tmp_path / "student.pth"
    proc = run_script("export.py", SEARCHPATH, f"ckpt={edge_run}", *options, f"out={out}")
    assert_one_line_error(proc, f"ckpt={edge_run}", *needles)
    assert not out.exists()


def test_a_plugin_model_that_does_not_import_is_refused_before_reading(tmp_path):
    # the command line names code that is not there (a package not on PYTHONPATH)
    args = (SEARCHPATH, "model=mysr_student", "model._target_=nowhere.networks.Net")
    proc = run_script("export.py", *args, f"ckpt={tmp_path / 'none.ckpt'}", f"out={tmp_path / 's'}")
    assert_one_line_error(proc, "model=mysr_student", "nowhere.networks.Net", "PYTHONPATH")


@pytest.mark.slow  # a real process started as documented: PYTHONPATH in its environment
def test_the_documented_fakd_command_runs_in_a_process(tmp_path):
    tiny = [option for option in TINY if option != "final_table=false"]
    args = [SEARCHPATH, PAIR, "loss=fakd", *tiny, f"hydra.run.dir={tmp_path}"]
    proc = run_process("train.py", *args, env={"PYTHONPATH": "examples/plugin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 1
    # the closing lines point to what works for a network of one's own: export, not upscale
    assert "python export.py ckpt=" in proc.stdout and "model=mysr_student" in proc.stdout
    assert "upscale your own photos" not in proc.stdout
