"""scripts/summarize_runs.py --final-table: final tables of several seeds as mean +- std."""

from __future__ import annotations

import importlib.util

from tests.helpers.shared import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    "summarize_runs", REPO_ROOT / "scripts" / "summarize_runs.py"
)
summarize_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summarize_runs)


def _table(control: float, distilled: float) -> dict:
    def row(psnr):
        return {"S": {"psnr": psnr, "ssim": 0.5}}

    return {
        "bicubic": row(28.0),
        "teacher": row(30.0),
        "student without teacher": row(control),
        "student": row(distilled),
    }


def test_final_tables_give_mean_spread_and_the_paired_gain():
    runs = [({"seed": "0"}, {"comparison": _table(29.0, 29.5)})]
    runs.append(({"seed": "1"}, {"comparison": _table(29.2, 29.3)}))
    lines = summarize_runs.final_table_summary(runs, digits=2).splitlines()
    assert lines[2] == "| bicubic | 2 | 28.00 +- 0.00 / 0.5000 |"
    assert lines[5].startswith("| student distilled | 2 | 29.40 +- 0.14 / 0.5000")
    # gains 0.5 and 0.1: mean 0.30, sample std 0.28
    assert lines[6] == "| gain of distillation | 2 | 0.30 +- 0.28 (per run: +0.50, +0.10) |"
