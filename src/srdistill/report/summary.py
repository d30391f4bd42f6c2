"""The sweep summaries: mean +- std over seeds per group, paired differences, final tables."""

from __future__ import annotations

import statistics
from collections import defaultdict

from srdistill.report.collect import ReportError, Run

BENCHMARK_ORDER = ["Set5", "Set14", "B100", "Urban100", "Manga109"]


def benchmarks(names) -> list[str]:
    """Benchmark names in the papers' order, others after them alphabetically."""
    order = BENCHMARK_ORDER
    return sorted(set(names), key=lambda s: (order.index(s) if s in order else len(order), s))


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
    runs: list[Run], group: str, versus: str, sets: list[str], digits: int
) -> list[str]:
    """Each group's PSNR minus ``versus``'s, run by run for the seeds both have."""
    reference = {args.get("seed", "0"): r for args, r in runs if args.get(group) == versus}
    if not reference:
        raise ReportError(f"--versus {versus}: no run has {group}={versus}")
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
    runs: list[Run],
    group: str,
    digits: int = 3,
    baseline: dict | None = None,
    versus: str | None = None,
) -> str:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for args, result in sorted(runs, key=lambda run: run[0].get(group, "?")):
        grouped[args.get(group, "?")].append(result)
    metrics = sorted({k for _, r in runs for k in r["val"]})
    sets = benchmarks(k.split("/")[1] for k in metrics if k.endswith("psnr_y"))
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


def final_table_summary(runs: list[Run], digits: int = 3) -> str:
    """Mean +- std over runs of every final-table row, and the paired gain of distillation."""
    tables = [result["comparison"] for _, result in runs if "comparison" in result]
    if not tables:
        raise ReportError("--final-table: no results.json holds a final table")
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


def grad_share_summary(runs: list[Run], group: str, term: str) -> str:
    """Per group, mean +- std over runs of TERM's ratio and cosine: first record, mean, last."""
    grouped: dict[str, list[list[dict]]] = defaultdict(list)
    for args, result in sorted(runs, key=lambda run: run[0].get(group, "?")):
        history = result.get("grad_share", {}).get("history", [])
        if any(f"{term}/ratio" in record for record in history):
            grouped[args.get(group, "?")].append(history)
    if not grouped:
        raise ReportError(f"--grad-share {term}: no results.json holds gradient shares of {term}")
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
