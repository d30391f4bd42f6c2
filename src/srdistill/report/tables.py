"""The paper layout: per scale, a row per method (paper order), ours beside the paper's numbers.

Every number is computed once into records (one per method, scale, benchmark and metric); the
Markdown, LaTeX and CSV outputs only format those records, so they cannot disagree.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from dataclasses import dataclass

from srdistill.report.collect import Run, identity
from srdistill.report.paper import paper_row, paper_value, row_keys
from srdistill.report.summary import benchmarks

METRICS = ("psnr", "ssim")
CSV_FIELDS = (
    *("scale", "method", "label", "n", "benchmark", "metric"),
    *("mean", "std", "paper", "diff"),
)


@dataclass(frozen=True)
class Record:
    scale: int | None
    method: str
    label: str
    n: int
    benchmark: str
    metric: str
    mean: float
    std: float
    paper: float | None

    @property
    def diff(self) -> float | None:
        return None if self.paper is None else self.mean - self.paper


def _method_order(table: dict, methods: set[str]) -> list[str]:
    """The paper's row order; methods the paper lacks after them, alphabetically."""
    order = []
    for row in table["rows"]:
        order += [m for m in sorted(row_keys(row)) if m in methods and m not in order]
    return order + sorted(methods - set(order))


def run_benchmarks(runs: list[Run]) -> list[str]:
    """The benchmarks every run was scored on."""
    per_run = [
        {key.split("/")[1] for key in r.get("val", {}) if key.endswith("/psnr_y")} for _, r in runs
    ]
    return benchmarks(set.intersection(*per_run) if per_run else set())


def paper_records(runs: list[Run], table: dict) -> list[Record]:
    grouped: dict[tuple, list[dict]] = defaultdict(list)
    for args, result in runs:
        who = identity(args, result)
        grouped[(who["scale"], who["method"])].append(result["val"])
    sets = run_benchmarks(runs)
    methods = _method_order(table, {method for _, method in grouped})
    records = []
    for scale in sorted({s for s, _ in grouped}, key=lambda s: (s is None, s or 0)):
        for method in (m for m in methods if (scale, m) in grouped):
            vals = grouped[(scale, method)]
            row = paper_row(table, method, scale)
            label = row["label"] if row else method
            for benchmark in sets:
                for metric in METRICS:
                    values = [v[f"val/{benchmark}/{metric}_y"] for v in vals]
                    std = statistics.stdev(values) if len(values) > 1 else 0.0
                    records.append(
                        Record(
                            scale, method, label, len(values), benchmark, metric,
                            statistics.fmean(values), std, paper_value(row, benchmark, metric),
                        )
                    )  # fmt: skip
    return records


def _blocks(records: list[Record]) -> dict:
    """scale -> method -> {(benchmark, metric): record}, in the records' order."""
    blocks: dict = {}
    for r in records:
        blocks.setdefault(r.scale, {}).setdefault(r.method, {})[(r.benchmark, r.metric)] = r
    return blocks


def _columns(records: list[Record]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r.benchmark, r.metric) for r in records))


def scale_name(scale: int | None) -> str:
    return "scale not recorded" if scale is None else f"x{scale}"


def _digits(metric: str, digits: int) -> int:
    return digits if metric == "psnr" else 4


def _num(value: float | None, places: int, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{places}f}" if sign else f"{value:.{places}f}"


def markdown(records: list[Record], table_name: str, table: dict, digits: int) -> str:
    columns = _columns(records)
    lines = [f"## {table_name}: {table['caption']}", ""]
    for scale, methods in _blocks(records).items():
        head = ["method", "n"]
        for benchmark, metric in columns:
            name = f"{benchmark} {metric.upper()}"
            head += [name, f"{name} paper", f"{name} diff"]
        lines += [f"### {scale_name(scale)}", ""]
        lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for cells in methods.values():
            first = next(iter(cells.values()))
            row = [first.label, str(first.n)]
            for column in columns:
                r = cells[column]
                places = _digits(r.metric, digits)
                row += [
                    f"{r.mean:.{places}f} ± {r.std:.{places}f}",
                    _num(r.paper, places),
                    _num(r.diff, places, sign=True),
                ]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def _tex(text: str) -> str:
    for char in "\\&%$#_{}":
        text = text.replace(char, "\\" + char)
    return text


def latex(records: list[Record], table: dict, digits: int) -> str:
    """One plain ``tabular`` per scale: ours (mean $\\pm$ std), the paper's, the difference."""
    columns = _columns(records)
    out = [f"% {_tex(table['caption'])}"]
    for scale, methods in _blocks(records).items():
        spec = "lr" + "rrr" * len(columns)
        head = ["Method", "$n$"]
        for benchmark, metric in columns:
            head += [f"{benchmark} {metric.upper()}", "paper", "$\\Delta$"]
        out += [f"% {scale_name(scale)}", f"\\begin{{tabular}}{{{spec}}}", "\\hline"]
        out += [" & ".join(head) + " \\\\", "\\hline"]
        for cells in methods.values():
            first = next(iter(cells.values()))
            row = [_tex(first.label), str(first.n)]
            for column in columns:
                r = cells[column]
                places = _digits(r.metric, digits)
                row += [
                    f"${r.mean:.{places}f} \\pm {r.std:.{places}f}$",
                    _num(r.paper, places),
                    f"${_num(r.diff, places, sign=True)}$",
                ]
            out.append(" & ".join(row) + " \\\\")
        out += ["\\hline", "\\end{tabular}", ""]
    return "\n".join(out)


def csv_text(records: list[Record]) -> str:
    """Full precision, one line per method, scale, benchmark and metric."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in records:
        writer.writerow(
            [r.scale, r.method, r.label, r.n, r.benchmark, r.metric, r.mean, r.std]
            + ["" if r.paper is None else r.paper, "" if r.diff is None else r.diff]
        )
    return buffer.getvalue()
