"""The numbers behind a table cell, looked up in each run's results.

A cell is blank when one of its runs holds no finite number there: train.py writes a non-finite
metric (a diverged run) as null, and runs of one sweep may be scored on different benchmarks.
A mean over the other runs would silently be a mean over fewer seeds, so the whole cell is left
blank and the table says once, below it, why and for which runs.
"""

from __future__ import annotations

import math
import statistics

from srdistill.report.collect import Run

NOT_FINITE = "no finite number (null in results.json: the metric was NaN or infinite)"
NOT_SCORED = "not scored there (no such benchmark or final-table row in results.json)"
_MISSING = object()
_RUNS_NAMED = 3  # a footnote names this many runs, then counts the rest


def _lookup(result: dict, path: tuple[str, ...]):
    value = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _blank_reason(value) -> str | None:
    if value is _MISSING:
        return NOT_SCORED
    if value is None or not math.isfinite(value):
        return NOT_FINITE
    return None


class Blanks:
    """The values of the cells of one table, and why some of them are blank."""

    def __init__(self) -> None:
        self.runs: dict[str, list[str]] = {NOT_FINITE: [], NOT_SCORED: []}

    def values(self, runs: list[Run], *path: str) -> list[float] | None:
        """The number at ``path`` in each run's results; None when a run has none there."""
        values, complete = [], True
        for args, result in runs:
            value = _lookup(result, path)
            reason = _blank_reason(value)
            if reason is not None:
                self._note(reason, args.get("run_dir", "?"))
                complete = False
            values.append(value)
        return values if complete else None

    def _note(self, reason: str, run: str) -> None:
        if run not in self.runs[reason]:
            self.runs[reason].append(run)

    def footnotes(self) -> list[str]:
        """One line per reason some cell is blank, naming the runs (plain text, unescaped)."""
        lines = []
        for reason, runs in self.runs.items():
            if runs:
                named = ", ".join(runs[:_RUNS_NAMED])
                more = f" and {len(runs) - _RUNS_NAMED} more" if len(runs) > _RUNS_NAMED else ""
                lines.append(f"blank cells: {reason} in {named}{more}")
        return lines


def mean_std(values: list[float] | None, digits: int) -> str:
    """``mean +- std`` (sample std; 0 for one run); blank for None."""
    if values is None:
        return ""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):+.{digits}f} +- {spread:.{digits}f}".lstrip("+")
