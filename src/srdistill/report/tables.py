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

from srdistill.report.cells import Blanks
from srdistill.report.collect import Run, identity, metric_key, scored_benchmarks
from srdistill.report.escape import latex_text, markdown_cell, markdown_row, markdown_rule
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
    mean: float | None  # None: a blank cell (a run of it holds no number there)
    std: float | None
    paper: float | None

    @property
    def diff(self) -> float | None:
        return None if self.paper is None or self.mean is None else self.mean - self.paper


def _method_order(table: dict, methods: set[str]) -> list[str]:
    """The paper's row order; methods the paper lacks after them, alphabetically."""
    order = []
    for row in table["rows"]:
        order += [m for m in sorted(row_keys(row)) if m in methods and m not in order]
    return order + sorted(methods - set(order))


def run_benchmarks(runs: list[Run]) -> list[str]:
    """The benchmarks any run was scored on (a run scored on fewer has blank cells)."""
    return benchmarks(s for _, r in runs for s in scored_benchmarks(r.get("val", {})))


def _grouped(runs: list[Run]) -> dict[tuple, list[Run]]:
    """(scale, method) -> its runs."""
    grouped: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        who = identity(*run)
        grouped[(who["scale"], who["method"])].append(run)
    return grouped


def _record(runs: list[Run], row: dict | None, method, benchmark, metric, blanks) -> Record:
    values = blanks.values(runs, "val", metric_key(benchmark, metric))
    mean = None if values is None else statistics.fmean(values)
    std = None if values is None else statistics.stdev(values) if len(values) > 1 else 0.0
    label = row["label"] if row else method
    scale = identity(*runs[0])["scale"]
    paper = paper_value(row, benchmark, metric)
    return Record(scale, method, label, len(runs), benchmark, metric, mean, std, paper)


def paper_records(runs: list[Run], table: dict, blanks: Blanks | None = None) -> list[Record]:
    """A record per method, scale, benchmark and metric; a mean is None (a blank cell) where a
    run of it holds no number, and ``blanks`` says why."""
    blanks = Blanks() if blanks is None else blanks
    grouped = _grouped(runs)
    sets = run_benchmarks(runs)
    methods = _method_order(table, {method for _, method in grouped})
    records = []
    for scale in sorted({s for s, _ in grouped}, key=lambda s: (s is None, s or 0)):
        for method in (m for m in methods if (scale, m) in grouped):
            row = paper_row(table, method, scale)
            records += [
                _record(grouped[(scale, method)], row, method, benchmark, metric, blanks)
                for benchmark in sets
                for metric in METRICS
            ]
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


def _triple(r: Record, digits: int, tex: bool = False) -> list[str]:
    """Ours (mean ± std), the paper's and ours - paper, as text or as LaTeX math; ours and the
    difference blank where a run holds no number."""
    places = _digits(r.metric, digits)
    if r.mean is None:
        return ["", _num(r.paper, places), ""]
    pm, wrap = (r"\pm", "${}$") if tex else ("±", "{}")
    ours = wrap.format(f"{r.mean:.{places}f} {pm} {r.std:.{places}f}")
    return [ours, _num(r.paper, places), wrap.format(_num(r.diff, places, sign=True))]


def _method_rows(methods: dict, columns: list, digits: int, tex: bool = False):
    """Per method: its label, n and the triple of every column (the label unescaped)."""
    for cells in methods.values():
        first = next(iter(cells.values()))
        yield [first.label, str(first.n)] + [
            text for column in columns for text in _triple(cells[column], digits, tex)
        ]


def markdown(records: list[Record], table_name: str, table: dict, digits: int, footnotes=()) -> str:
    columns = _columns(records)
    lines = [f"## {markdown_cell(table_name)}: {markdown_cell(table['caption'])}", ""]
    for scale, methods in _blocks(records).items():
        head = ["method", "n"]
        for benchmark, metric in columns:
            name = f"{benchmark} {metric.upper()}"
            head += [name, f"{name} paper", f"{name} diff"]
        lines += [f"### {scale_name(scale)}", ""]
        lines += [markdown_row(head), markdown_rule(len(head))]
        lines += [markdown_row(row) for row in _method_rows(methods, columns, digits)]
        lines.append("")
    return "\n".join(lines + [markdown_cell(note) for note in footnotes])


def latex(records: list[Record], table: dict, digits: int, footnotes=()) -> str:
    """One plain ``tabular`` per scale: ours (mean $\\pm$ std), the paper's, the difference;
    every text from the runs or the paper escaped, so none of it is a TeX command."""
    columns = _columns(records)
    out = [f"% {latex_text(table['caption'])}"]
    for scale, methods in _blocks(records).items():
        spec = "lr" + "rrr" * len(columns)
        head = ["Method", "$n$"]
        for benchmark, metric in columns:
            head += [f"{latex_text(benchmark)} {metric.upper()}", "paper", "$\\Delta$"]
        out += [f"% {scale_name(scale)}", f"\\begin{{tabular}}{{{spec}}}", "\\hline"]
        out += [" & ".join(head) + " \\\\", "\\hline"]
        for label, *cells in _method_rows(methods, columns, digits, tex=True):
            out.append(" & ".join([latex_text(label), *cells]) + " \\\\")
        out += ["\\hline", "\\end{tabular}", ""]
    return "\n".join(out + [f"% {latex_text(note)}" for note in footnotes])


# A cell starting with one of these is a formula to a spreadsheet (``=cmd|' /C calc'!A0``)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """User text (a method, label or set name) as a CSV cell a spreadsheet shows as text: a
    leading ``'`` keeps it from being run as a formula. Numbers are written as they are."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(records: list[Record]) -> str:
    """Full precision, one line per method, scale, benchmark and metric."""
    buffer = io.StringIO()
    # CRLF rows (RFC 4180, the csv module's default): with "\n" alone, a CR in a set name is
    # left unquoted and ends the row in every reader
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for r in records:
        method, label, benchmark = (csv_cell(text) for text in (r.method, r.label, r.benchmark))
        writer.writerow(
            [r.scale, method, label, r.n, benchmark, r.metric]
            + ["" if r.mean is None else r.mean, "" if r.std is None else r.std]
            + ["" if r.paper is None else r.paper, "" if r.diff is None else r.diff]
        )
    return buffer.getvalue()
