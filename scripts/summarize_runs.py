"""Summarise the results.json files of a sweep as a markdown table: mean +- std over seeds.

python scripts/summarize_runs.py multirun/2026-11-23_02-30-00 [--group loss]
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


def summarize(runs: list[tuple[dict, dict]], group: str) -> str:
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
                f"{statistics.mean(psnr):.3f} +- {spread:.3f} / {statistics.mean(ssim):.4f}"
            )
        steps = {r["steps"] for r in results}
        lines.append(
            f"| {name} | {len(results)} | {','.join(map(str, steps))} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--group", default="loss")
    args = parser.parse_args()
    print(summarize(load_runs(args.root), args.group))


if __name__ == "__main__":
    main()
