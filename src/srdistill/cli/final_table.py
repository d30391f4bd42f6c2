"""The table a training run ends with: bicubic, teacher, the student(s), and the gain.

Every network is scored on the validation sets with the benchmark protocol (whole images, Y
channel, ``scale`` pixels cropped). The student is the deployed network (``export_student``:
adapters merged, averaged); with a control arm, the student trained without the teacher is
scored the same way and the table ends with the gain of distillation over it. With
``module.val_self_ensemble`` the student rows are scored as validated, with the x8 self-ensemble
(bicubic and the teacher stay plain: they are the references the student is compared with).
"""

from __future__ import annotations

import sys
from pathlib import Path

from srdistill.data.samples import materialize_samples
from srdistill.eval.benchmark import evaluate_benchmarks
from srdistill.eval.ensemble import SelfEnsemble
from srdistill.models.backbones.bicubic import Bicubic

CONTROL_ROW, DISTILLED_ROW = "student without teacher", "student distilled"
STUDENT_ROWS = ("student", CONTROL_ROW)


def comparison_table(
    module,
    datamodule,
    scale: int,
    names=("bicubic", "teacher", "student"),
    control=None,
    seed: int | None = None,
) -> tuple[dict, str]:
    """Scores of the networks named in ``names`` (and of the control arm's student when given)
    on the validation sets, and the printed table (headed by the run's ``seed``)."""
    root = datamodule.val_root if datamodule.val_root is not None else materialize_samples()
    builders = {
        "bicubic": lambda: Bicubic(scale),
        "teacher": lambda: module.teacher,
        "student": module.export_student,
    }
    unknown = sorted(set(names) - set(builders))
    if unknown:
        raise ValueError(f"final_table_models: unknown {unknown}; choose from {list(builders)}")
    if control is not None:
        builders[CONTROL_ROW] = control.export_student
        names = [n for n in names if n != "student"] + [CONTROL_ROW, "student"]
    ensemble = bool(module.hparams.get("val_self_ensemble", False))
    results = {}
    for name in names:
        model = builders[name]()
        if model is None:
            continue
        if ensemble and name in STUDENT_ROWS:
            model = SelfEnsemble(model)
        results[name] = evaluate_benchmarks(model.cpu().eval(), root, datamodule.val_sets, scale)
        for metrics in results[name].values():
            metrics["self_ensemble"] = ensemble and name in STUDENT_ROWS
    distilled = control is not None
    table = format_comparison(results, scale, distilled=distilled, ensemble=ensemble, seed=seed)
    return results, table


def format_comparison(
    results: dict[str, dict],
    scale: int,
    distilled: bool = False,
    ensemble: bool = False,
    seed: int | None = None,
) -> str:
    """Rows of networks, a ``PSNR-Y / SSIM-Y`` column per set; with a control arm, the student
    row is called distilled and a last row gives its PSNR gain over the control. ``ensemble``:
    the student rows are marked as scored with the x8 self-ensemble. The header names ``seed``:
    the students' numbers are one seed's, and move with it."""
    sets = list(next(iter(results.values())))
    label = {"student": DISTILLED_ROW} if distilled else {}
    if ensemble:
        label = {row: f"{label.get(row, row)} (x8 self-ensemble)" for row in STUDENT_ROWS}
    width = max(len(label.get(n, n)) for n in results) + 2
    lines = [
        f"x{scale}{'' if seed is None else f', seed {seed}'}, PSNR-Y (dB) / SSIM-Y on the "
        "validation images",
        f"{'':<{width}}" + "".join(f"{s:>20}" for s in sets),
    ]
    for name, per_set in results.items():
        cells = "".join(f"{per_set[s]['psnr']:>11.4f} / {per_set[s]['ssim']:.4f}" for s in sets)
        lines.append(f"{label.get(name, name):<{width}}{cells}")
    if distilled and CONTROL_ROW in results and "student" in results:
        gains = [results["student"][s]["psnr"] - results[CONTROL_ROW][s]["psnr"] for s in sets]
        cells = "".join(f"{f'{g:+.4f} dB':>14}{'':6}" for g in gains)
        lines.append(f"{'gain of distillation':<{width}}{cells}".rstrip())
    return "\n".join(lines)


def where_line(
    run_dir: str | Path, best_checkpoint: str | None, own_model: str | None = None
) -> str:
    """Where the run's outputs are, and how to use the student on one's own photos; for a
    student of the user's own code (``own_model``: its conf/model name), which the upscaler
    cannot rebuild, how to export it instead."""
    run_dir = Path(run_dir)
    strips = sorted((run_dir / "samples").glob("step_*.png"))
    best = best_checkpoint or str(run_dir / "checkpoints" / "last.ckpt")
    parts = [f"run folder: {run_dir}", f"best checkpoint: {best}"]
    if strips:
        parts.append(f"sample strip (LR | bicubic | teacher | student | HR): {strips[-1]}")
    if own_model:
        export = f"python export.py ckpt={best} model={own_model} out=student.safetensors"
        return "\n".join(parts) + f"\nexport this student (with your hydra.searchpath): {export}"
    upscale = f"{_upscale_command()} PHOTO.png -o upscaled/ --ckpt {best}"
    return "\n".join(parts) + f"\nupscale your own photos with this student: {upscale}"


def _upscale_command() -> str:
    """The console script beside this Python (a virtual environment need not be activated)."""
    beside = Path(sys.executable).parent / "srdistill-upscale"
    return str(beside) if beside.is_file() else "srdistill-upscale"
