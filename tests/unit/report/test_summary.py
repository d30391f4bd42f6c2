"""srdistill-report's summary mode: groups, paired differences, final tables, gradient shares."""

from __future__ import annotations

import json

from srdistill.report import collect, summary


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
    lines = summary.final_table_summary(runs, digits=2).splitlines()
    assert lines[2] == "| bicubic | 2 | 28.00 +- 0.00 / 0.5000 |"
    assert lines[5].startswith("| student distilled | 2 | 29.40 +- 0.14 / 0.5000")
    # gains 0.5 and 0.1: mean 0.30, sample std 0.28
    assert lines[6] == "| gain of distillation | 2 | 0.30 +- 0.28 (per run: +0.50, +0.10) |"


def _run(folder: str, seed: str, psnr: float) -> tuple[dict, dict]:
    val = {"val/Set5/psnr_y": psnr, "val/Set5/ssim_y": 0.9}
    return {"seed": seed, "folder": folder}, {"val": val, "steps": 10}


def test_versus_pairs_each_group_with_the_reference_run_of_the_same_seed():
    runs = [_run("b", "0", 30.0), _run("b", "1", 31.0), _run("c", "0", 30.5), _run("c", "1", 30.9)]
    lines = summary.summarize(runs, "folder", digits=2, versus="b").splitlines()
    assert lines[2].startswith("| b | 2 | 10 | 30.50 +- 0.71")
    # paired differences +0.5 and -0.1: mean 0.20, sample std 0.42
    assert lines[4] == "| c - b | 2 | | 0.20 +- 0.42 |"


def test_folder_group_is_the_folder_above_each_run(tmp_path):
    for arm, seed in (("b_pixel", 0), ("c_cont", 0)):
        run = tmp_path / arm / f"seed{seed}"
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
        (run / "results.json").write_text('{"val": {}, "steps": 1}')
    assert [args["folder"] for args, _ in collect.load_runs(tmp_path)] == [
        "b_pixel",
        "c_cont",
    ]


def test_grad_share_gives_first_mean_last_over_runs():
    def run(seed, ratios):
        history = [{"step": 10 * i, "cont/ratio": r, "cont/cos": 0.5} for i, r in enumerate(ratios)]
        return {"seed": seed, "folder": "c"}, {"grad_share": {"history": history}}

    runs = [run("0", [0.1, 0.3, 0.5]), run("1", [0.1, 0.5, 0.9])]
    lines = summary.grad_share_summary(runs, "folder", "cont").splitlines()
    # first 0.1 and 0.1; means 0.3 and 0.5 (-> 0.40 +- 0.14); last 0.5 and 0.9 (-> 0.70 +- 0.28)
    assert lines[2] == (
        "| c | 2 | 0.10 +- 0.00 / 0.40 +- 0.14 / 0.70 +- 0.28 "
        "| 0.50 +- 0.00 / 0.50 +- 0.00 / 0.50 +- 0.00 |"
    )


def test_eval_json_scores_each_run_and_its_control_from_their_files(tmp_path):
    def write(folder, psnr):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "eval.json").write_text(json.dumps({"Set5": {"psnr": psnr, "ssim": 0.9}}))

    runs = []
    for seed, (distilled, control) in enumerate(((30.3, 30.0), (30.6, 30.4))):
        run = tmp_path / "seeds" / f"seed{seed}"
        write(run, distilled)
        write(run / "without_teacher", control)
        runs.append(({"seed": str(seed), "folder": "seeds", "run_dir": str(run)}, {"steps": 5}))
    scored = collect.eval_json_runs(runs, "folder", "eval.json")
    lines = summary.summarize(scored, "folder", 2, versus="seeds without teacher")
    # paired gains +0.3 and +0.2 -> 0.25 +- 0.07
    assert lines.splitlines()[-1] == "| seeds - seeds without teacher | 2 | | 0.25 +- 0.07 |"
