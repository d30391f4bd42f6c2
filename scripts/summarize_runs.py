"""Summarise the results.json files of a sweep as a markdown table: mean +- std over seeds.

python scripts/summarize_runs.py multirun/2026-11-23_02-30-00 [--group loss]
    [--deployed] [--digits 4] [--baseline span_tiny.json]

--deployed reads the deployed student of the final table (adapters merged, averaged) instead of
the last validation; --baseline adds the gain of each group's mean over an eval.py ``out=`` JSON.
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


def summarize(
    runs: list[tuple[dict, dict]], group: str, digits: int = 3, baseline: dict | None = None
) -> str:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for args, result in runs:
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
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--group", default="loss")
    parser.add_argument("--deployed", action="store_true")
    parser.add_argument("--digits", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None)
    args = parser.parse_args()
    runs = load_runs(args.root)
    if args.deployed:
        runs = [(overrides, deployed_metrics(result)) for overrides, result in runs]
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    print(summarize(runs, args.group, args.digits, baseline))


if __name__ == "__main__":
    main()
