"""Cached vs online teacher at equal steps: the markdown table of a teacher.cache=false,true sweep.

Each run's arm is read from its ``.hydra/config.yaml`` (plain YAML, safe-loaded) and its scores
from ``results.json``; runs are paired by seed (same initial weights, data order and schedule).

python scripts/teacher_cache_quality.py outputs/teacher_cache_quality/kd
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import yaml

from srdistill.cli.arguments import OneLineErrorParser


def runs(root: Path) -> dict[tuple[bool, int], dict]:
    found = {}
    for results_file in sorted(root.rglob("results.json")):
        config = yaml.safe_load((results_file.parent / ".hydra" / "config.yaml").read_text())
        key = (bool(config["teacher"]["cache"]), int(config["seed"]))
        found[key] = json.loads(results_file.read_text())
    return found


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):+.4f} ± {sd:.4f}" if values else "n/a"


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def table(found: dict) -> str:
    seeds = sorted({seed for _, seed in found if (True, seed) in found and (False, seed) in found})
    metrics = sorted(k for k in found[(False, seeds[0])]["val"] if k.endswith("psnr_y"))
    lines = [
        f"seeds: {seeds}",
        "",
        "| metric | online teacher | cached teacher | cached - online (paired) |",
        "|---|---|---|---|",
    ]
    for metric in metrics:
        online = [found[(False, s)]["val"][metric] for s in seeds]
        cached = [found[(True, s)]["val"][metric] for s in seeds]
        diffs = [c - o for c, o in zip(cached, online, strict=True)]
        lines.append(f"| {metric} | {mean_sd(online)} | {mean_sd(cached)} | {spread(diffs)} |")
    walls = {arm: [found[(arm, s)]["wall_time_s"] for s in seeds] for arm in (False, True)}
    lines.append(
        f"| wall time per run (s) | {mean_sd(walls[False])} | {mean_sd(walls[True])} "
        f"(first run builds the cache: {walls[True][0]}) | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = OneLineErrorParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the sweep folder")
    found = runs(parser.parse_args().root)
    if not any((not cached, seed) in found for cached, seed in found):
        parser.error("no seed has both a teacher.cache=false and a teacher.cache=true run there")
    print(table(found))


if __name__ == "__main__":
    main()
