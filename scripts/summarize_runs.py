"""Summarise the results.json files of a sweep as a markdown table: mean +- std over seeds.

python scripts/summarize_runs.py multirun/2026-11-23_02-30-00 [--group loss]
    [--deployed] [--digits 4] [--baseline span_tiny.json] [--versus GROUP]

--group names an override that tells the runs apart (loss, seed, ...), or ``folder``: the
folder that holds each run folder (OUT/<arm>/seed0/results.json -> <arm>);
--versus GROUP adds each group's difference to GROUP, paired by seed (same seed, same data order);
--eval-json NAME reads each run's metrics from the eval.py ``out=`` file NAME in its folder (e.g.
the exported network's score), and a control's from <run>/without_teacher/NAME as the group
"<group> without teacher" (pair them with --versus);
--grad-share TERM summarises the runs' gradient shares (module.grad_share_every) of TERM instead:
its gradient norm relative to the rec term's and the cosine with it, first / mean / last
--deployed reads the deployed student of the final table (adapters merged, averaged) instead of
the last validation; --baseline adds the gain of each group's mean over an eval.py ``out=`` JSON;
--final-table summarises the rows of the runs' final tables (bicubic, teacher, the student
without teacher, the distilled student) and the gain of distillation, seed by seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def load_runs(root: Path) -> list[tuple[dict, dict]]:
    runs = []
    for path in sorted(root.rglob("results.json")):
        overrides = (path.parent / ".hydra" / "overrides.yaml").read_text().splitlines()
        args = dict(line.lstrip("- ").split("=", 1) for line in overrides if "=" in line)
        args["folder"] = path.parent.parent.name
        args["run_dir"] = str(path.parent)
        runs.append((args, json.loads(path.read_text())))
    if not runs:
        raise SystemExit(f"no results.json below {root}")
    return runs


def deployed_metrics(result: dict) -> dict:
    """The final table's student row in the shape of ``result["val"]``."""
    table = result.get("comparison", {}).get("student")
    if table is None:
        raise SystemExit("--deployed: a results.json has no final-table student row")
    out = {}
    for name, metrics in table.items():
        out[f"val/{name}/psnr_y"], out[f"val/{name}/ssim_y"] = metrics["psnr"], metrics["ssim"]
    return {**result, "val": out}


def _as_val(metrics: dict) -> dict:
    out = {}
    for name, values in metrics.items():
        out[f"val/{name}/psnr_y"], out[f"val/{name}/ssim_y"] = values["psnr"], values["ssim"]
    return out


def eval_json_runs(runs: list[tuple[dict, dict]], group: str, name: str) -> list:
    """Runs scored by their eval.py files; controls (without_teacher/) as their own group."""
    scored = []
    for args, result in runs:
        folder = Path(args["run_dir"])
        if not (folder / name).is_file():
            raise SystemExit(f"--eval-json: {folder / name} does not exist")
        scored.append((args, {**result, "val": _as_val(json.loads((folder / name).read_text()))}))
        control = folder / "without_teacher" / name
        if control.is_file():
            label = f"{args.get(group, '?')} without teacher"
            val = _as_val(json.loads(control.read_text()))
            scored.append(({**args, group: label}, {**result, "val": val}))
    return scored


def gain_row(grouped: dict, sets: list[str], baseline: dict, digits: int) -> list[str]:
    lines = []
    for name, results in grouped.items():
        gains = [
            statistics.mean(r["val"][f"val/{s}/psnr_y"] for r in results) - baseline[s]["psnr"]
            for s in sets
        ]
        lines.append(
            f"| gain of {name} | | | " + " | ".join(f"{g:+.{digits}f}" for g in gains) + " |"
        )
    return lines


def paired_rows(
    runs: list[tuple[dict, dict]], group: str, versus: str, sets: list[str], digits: int
) -> list[str]:
    """Each group's PSNR minus ``versus``'s, run by run for the seeds both have."""
    reference = {args.get("seed", "0"): r for args, r in runs if args.get(group) == versus}
    if not reference:
        raise SystemExit(f"--versus {versus}: no run has {group}={versus}")
    diffs: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for args, result in runs:
        other = reference.get(args.get("seed", "0"))
        if args.get(group) == versus or other is None:
            continue
        for s in sets:
            key = f"val/{s}/psnr_y"
            diffs[args.get(group, "?")][s].append(result["val"][key] - other["val"][key])
    return [
        f"| {name} - {versus} | {len(by_set[sets[0]])} | | "
        + " | ".join(_mean_std(by_set[s], digits) for s in sets)
        + " |"
        for name, by_set in diffs.items()
    ]


def summarize(
    runs: list[tuple[dict, dict]],
    group: str,
    digits: int = 3,
    baseline: dict | None = None,
    versus: str | None = None,
) -> str:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for args, result in sorted(runs, key=lambda run: run[0].get(group, "?")):
        grouped[args.get(group, "?")].append(result)
    metrics = sorted({k for _, r in runs for k in r["val"]})
    order = ["Set5", "Set14", "B100", "Urban100", "Manga109"]
    sets = sorted(
        (k.split("/")[1] for k in metrics if k.endswith("psnr_y")),
        key=lambda s: (order.index(s) if s in order else len(order), s),
    )
    lines = [
        f"| {group} | runs | steps | " + " | ".join(f"{s} PSNR / SSIM" for s in sets) + " |",
        "|---|---|---|" + "---|" * len(sets),
    ]
    for name, results in grouped.items():
        cells = []
        for s in sets:
            psnr = [r["val"][f"val/{s}/psnr_y"] for r in results]
            ssim = [r["val"][f"val/{s}/ssim_y"] for r in results]
            spread = statistics.stdev(psnr) if len(psnr) > 1 else 0.0
            cells.append(
                f"{statistics.mean(psnr):.{digits}f} +- {spread:.{digits}f} / "
                f"{statistics.mean(ssim):.4f}"
            )
        steps = {r["steps"] for r in results}
        lines.append(
            f"| {name} | {len(results)} | {','.join(map(str, steps))} | " + " | ".join(cells) + " |"
        )
    if baseline is not None:
        cells = [f"{baseline[s]['psnr']:.{digits}f} / {baseline[s]['ssim']:.4f}" for s in sets]
        lines.append("| baseline | 1 | 0 | " + " | ".join(cells) + " |")
        lines += gain_row(grouped, sets, baseline, digits)
    if versus is not None:
        lines += paired_rows(runs, group, versus, sets, digits)
    return "\n".join(lines)


def final_table_summary(runs: list[tuple[dict, dict]], digits: int = 3) -> str:
    """Mean +- std over runs of every final-table row, and the paired gain of distillation."""
    tables = [result["comparison"] for _, result in runs if "comparison" in result]
    if not tables:
        raise SystemExit("--final-table: no results.json holds a final table")
    sets = list(tables[0]["student"])
    lines = [
        "| network | runs | " + " | ".join(f"{s} PSNR-Y / SSIM-Y" for s in sets) + " |",
        "|---|---|" + "---|" * len(sets),
    ]
    for row in tables[0]:
        values = [t[row] for t in tables if row in t]
        cells = [_mean_std([v[s]["psnr"] for v in values], digits) for s in sets]
        ssim = [statistics.mean(v[s]["ssim"] for v in values) for s in sets]
        name = "student distilled" if row == "student" and len(tables[0]) > 3 else row
        lines.append(
            f"| {name} | {len(values)} | "
            + " | ".join(f"{c} / {m:.4f}" for c, m in zip(cells, ssim, strict=True))
            + " |"
        )
    paired = [t for t in tables if "student without teacher" in t]
    if paired:
        gains = [
            [t["student"][s]["psnr"] - t["student without teacher"][s]["psnr"] for t in paired]
            for s in sets
        ]
        lines.append(
            f"| gain of distillation | {len(paired)} | "
            + " | ".join(
                f"{_mean_std(g, digits)} (per run: {', '.join(f'{x:+.{digits}f}' for x in g)})"
                for g in gains
            )
            + " |"
        )
    return "\n".join(lines)


def grad_share_summary(runs: list[tuple[dict, dict]], group: str, term: str) -> str:
    """Per group, mean +- std over runs of TERM's ratio and cosine: first record, mean, last."""
    grouped: dict[str, list[list[dict]]] = defaultdict(list)
    for args, result in sorted(runs, key=lambda run: run[0].get(group, "?")):
        history = result.get("grad_share", {}).get("history", [])
        if any(f"{term}/ratio" in record for record in history):
            grouped[args.get(group, "?")].append(history)
    if not grouped:
        raise SystemExit(f"--grad-share {term}: no results.json holds gradient shares of {term}")
    lines = [
        f"| {group} | runs | {term} ratio: first / mean / last | cosine: first / mean / last |",
        "|---|---|---|---|",
    ]
    for name, histories in grouped.items():
        cells = []
        for stat in ("ratio", "cos"):
            series = [[r[f"{term}/{stat}"] for r in h if f"{term}/{stat}" in r] for h in histories]
            picks = [[v[0] for v in series], [statistics.fmean(v) for v in series]]
            picks.append([v[-1] for v in series])
            cells.append(" / ".join(_mean_std(p, 2) for p in picks))
        lines.append(f"| {name} | {len(histories)} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _mean_std(values: list[float], digits: int) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):+.{digits}f} +- {spread:.{digits}f}".lstrip("+")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--group", default="loss")
    parser.add_argument("--deployed", action="store_true")
    parser.add_argument("--digits", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--final-table", action="store_true")
    parser.add_argument("--versus", default=None, help="a group to subtract, paired by seed")
    parser.add_argument("--grad-share", default=None, metavar="TERM")
    parser.add_argument("--eval-json", default=None, metavar="NAME")
    args = parser.parse_args()
    runs = load_runs(args.root)
    if args.final_table:
        print(final_table_summary(runs, args.digits))
        return
    if args.grad_share:
        print(grad_share_summary(runs, args.group, args.grad_share))
        return
    if args.deployed:
        runs = [(overrides, deployed_metrics(result)) for overrides, result in runs]
    if args.eval_json:
        runs = eval_json_runs(runs, args.group, args.eval_json)
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    print(summarize(runs, args.group, args.digits, baseline, args.versus))


if __name__ == "__main__":
    main()
