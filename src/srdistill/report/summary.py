"""The sweep summaries: mean +- std over seeds per group, paired differences, final tables."""

from __future__ import annotations

import statistics
from collections import defaultdict

from srdistill.report.cells import Blanks, mean_std
from srdistill.report.collect import ReportError, Run, metric_key, scored_benchmarks
from srdistill.report.escape import markdown_cell, markdown_row, markdown_rule
from srdistill.report.weights import weights_section

BENCHMARK_ORDER = ["Set5", "Set14", "B100", "Urban100", "Manga109"]
METRICS = ("psnr", "ssim")
CONTROL = "student without teacher"  # the final table's row of the no-teacher control arm


def benchmarks(names) -> list[str]:
    """Benchmark names in the papers' order, others after them alphabetically."""
    order = BENCHMARK_ORDER
    return sorted(set(names), key=lambda s: (order.index(s) if s in order else len(order), s))


def with_footnotes(lines: list[str], blanks: Blanks) -> str:
    """The table, then (after a blank line) why any of its cells is blank."""
    notes = [markdown_cell(note) for note in blanks.footnotes()]
    return "\n".join(lines + ([""] + notes if notes else []))


def _grouped(runs: list[Run], group: str) -> dict[str, list[Run]]:
    grouped: dict[str, list[Run]] = defaultdict(list)
    for run in sorted(runs, key=lambda run: run[0].get(group, "?")):
        grouped[run[0].get(group, "?")].append(run)
    return grouped


def psnr_ssim(psnr: list | None, ssim: list | None, digits: int, spread: bool = True) -> str:
    """``mean +- std / mean SSIM`` (without the spread: one value), blank if either is."""
    if psnr is None or ssim is None:
        return ""
    mean = mean_std(psnr, digits) if spread else f"{statistics.mean(psnr):.{digits}f}"
    return f"{mean} / {statistics.mean(ssim):.4f}"


def _val_cell(blanks: Blanks, runs: list[Run], benchmark: str, digits: int, spread=True) -> str:
    psnr = blanks.values(runs, "val", metric_key(benchmark, "psnr"))
    ssim = blanks.values(runs, "val", metric_key(benchmark, "ssim"))
    return psnr_ssim(psnr, ssim, digits, spread)


def _mean_minus(blanks: Blanks, runs: list[Run], reference: list[Run], key: str) -> float | None:
    ours, theirs = blanks.values(runs, "val", key), blanks.values(reference, "val", key)
    if ours is None or theirs is None:
        return None
    return statistics.mean(ours) - statistics.mean(theirs)


def gain_rows(grouped, sets: list[str], baseline: Run, blanks: Blanks, digits: int) -> list[str]:
    lines = []
    for name, runs in grouped.items():
        gains = [_mean_minus(blanks, runs, [baseline], metric_key(s, "psnr")) for s in sets]
        cells = ["" if g is None else f"{g:+.{digits}f}" for g in gains]
        lines.append(markdown_row([f"gain of {name}", "", "", *cells]))
    return lines


def paired_rows(
    runs: list[Run], group: str, versus: str, sets: list[str], blanks: Blanks, digits: int
) -> list[str]:
    """Each group's PSNR minus ``versus``'s, run by run for the seeds both have."""
    reference = {run[0].get("seed", "0"): run for run in runs if run[0].get(group) == versus}
    if not reference:
        raise ReportError(f"--versus {versus}: no run has {group}={versus}")
    diffs: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    pairs: dict[str, int] = defaultdict(int)
    for run in runs:
        other = reference.get(run[0].get("seed", "0"))
        if run[0].get(group) == versus or other is None:
            continue
        name = run[0].get(group, "?")
        pairs[name] += 1
        for s in sets:
            diffs[name][s].append(_mean_minus(blanks, [run], [other], metric_key(s, "psnr")))
    return [
        markdown_row([f"{name} - {versus}", pairs[name], "", *(_paired(diffs[name][s], digits)
                                                                for s in sets)])
        for name in pairs
    ]  # fmt: skip


def _paired(diffs: list[float | None], digits: int) -> str:
    return mean_std(None if None in diffs else diffs, digits)


def _steps(runs: list[Run]) -> str:
    return ",".join(str(s) for s in sorted({r["steps"] for _, r in runs if "steps" in r}))


def summarize(
    runs: list[Run],
    group: str,
    digits: int = 3,
    baseline: Run | None = None,
    versus: str | None = None,
) -> str:
    """Per group: runs, steps, and per benchmark mean +- std PSNR over them / mean SSIM;
    ``baseline`` (a run: an eval.py file's scores as ``val``) adds its row and each group's gain
    over it; ``versus`` each group's paired difference to that group."""
    grouped = _grouped(runs, group)
    sets = benchmarks(s for _, r in runs for s in scored_benchmarks(r.get("val", {})))
    blanks = Blanks()
    lines = [
        markdown_row([group, "runs", "steps", *(f"{s} PSNR / SSIM" for s in sets)]),
        markdown_rule(3 + len(sets)),
    ]
    for name, members in grouped.items():
        cells = [_val_cell(blanks, members, s, digits) for s in sets]
        lines.append(markdown_row([name, len(members), _steps(members), *cells]))
    if baseline is not None:
        cells = [_val_cell(blanks, [baseline], s, digits, spread=False) for s in sets]
        lines.append(markdown_row(["baseline", 1, 0, *cells]))
        lines += gain_rows(grouped, sets, baseline, blanks, digits)
    if versus is not None:
        lines += paired_rows(runs, group, versus, sets, blanks, digits)
    return "\n".join([with_footnotes(lines, blanks), *weights_section(grouped, group)])


def _final_tables(runs: list[Run]) -> list[Run]:
    tables = [run for run in runs if "comparison" in run[1]]
    if not tables:
        raise ReportError("--final-table: no results.json holds a final table")
    return tables


def final_table_summary(runs: list[Run], digits: int = 3) -> str:
    """Mean +- std over runs of every final-table row, and the paired gain of distillation."""
    tables = _final_tables(runs)
    rows = list(dict.fromkeys(row for _, r in tables for row in r["comparison"]))
    sets = benchmarks(s for _, r in tables for row in r["comparison"].values() for s in row)
    blanks = Blanks()
    lines = [
        markdown_row(["network", "runs", *(f"{s} PSNR-Y / SSIM-Y" for s in sets)]),
        markdown_rule(2 + len(sets)),
    ]
    for row in rows:
        members = [run for run in tables if row in run[1]["comparison"]]
        cells = [
            psnr_ssim(*(blanks.values(members, "comparison", row, s, m) for m in METRICS), digits)
            for s in sets
        ]
        name = "student distilled" if row == "student" and CONTROL in rows else row
        lines.append(markdown_row([name, len(members), *cells]))
    paired = [run for run in tables if CONTROL in run[1]["comparison"]]
    if paired:
        gains = [_gains(blanks, paired, s) for s in sets]
        lines.append(markdown_row(["gain of distillation", len(paired),
                                   *(_gain_cell(g, digits) for g in gains)]))  # fmt: skip
    return with_footnotes(lines, blanks)


def _gains(blanks: Blanks, runs: list[Run], benchmark: str) -> list[float] | None:
    """Per run: the distilled student's PSNR minus its control's."""
    distilled = blanks.values(runs, "comparison", "student", benchmark, "psnr")
    control = blanks.values(runs, "comparison", CONTROL, benchmark, "psnr")
    if distilled is None or control is None:
        return None
    return [d - c for d, c in zip(distilled, control, strict=True)]


def _gain_cell(gains: list[float] | None, digits: int) -> str:
    if gains is None:
        return ""
    per_run = ", ".join(f"{g:+.{digits}f}" for g in gains)
    return f"{mean_std(gains, digits)} (per run: {per_run})"


def grad_share_summary(runs: list[Run], group: str, term: str) -> str:
    """Per group, mean +- std over runs of TERM's ratio and cosine: first record, mean, last."""
    grouped: dict[str, list[Run]] = defaultdict(list)
    for name, members in _grouped(runs, group).items():
        for run in members:
            history = run[1].get("grad_share", {}).get("history", [])
            if any(f"{term}/ratio" in record for record in history):
                grouped[name].append(run)
    if not grouped:
        raise ReportError(f"--grad-share {term}: no results.json holds gradient shares of {term}")
    blanks = Blanks()
    lines = [
        markdown_row([group, "runs", f"{term} ratio: first / mean / last",
                      "cosine: first / mean / last"]),
        markdown_rule(4),
    ]  # fmt: skip
    for name, members in grouped.items():
        cells = [_share_cell(blanks, members, f"{term}/{stat}") for stat in ("ratio", "cos")]
        lines.append(markdown_row([name, len(members), *cells]))
    return with_footnotes(lines, blanks)


def _share_cell(blanks: Blanks, runs: list[Run], key: str) -> str:
    """First / mean / last of ``key`` over each run's history, mean +- std over the runs."""
    series = [_series(blanks, run, key) for run in runs]
    if None in series:
        return ""
    picks = [[v[0] for v in series], [statistics.fmean(v) for v in series], [v[-1] for v in series]]
    return " / ".join(mean_std(p, 2) for p in picks)


def _series(blanks: Blanks, run: Run, key: str) -> list[float] | None:
    history = [record for record in run[1]["grad_share"]["history"] if key in record]
    # an empty history is looked up once, so that the blank cell is explained
    return blanks.values([(run[0], record) for record in history or [{}]], key)
