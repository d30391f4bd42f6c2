"""The papers' published numbers (package data, read as plain JSON: nothing in it is code)."""

from __future__ import annotations

import functools
import json
from importlib import resources

from srdistill.report.collect import ReportError

DATA_FILE = "paper_numbers.json"


@functools.cache
def paper_numbers() -> dict:
    return json.loads(resources.files(__package__).joinpath(DATA_FILE).read_text("utf-8"))


def paper_table(name: str) -> dict:
    """One paper table by its key (``mcad_tab3``); an unknown key names the known ones."""
    tables = paper_numbers()["tables"]
    if name not in tables:
        raise ReportError(f"--paper {name}: no such paper table; choose one of {', '.join(tables)}")
    return tables[name]


def row_keys(row: dict) -> set[str]:
    """The method keys a run may carry to match this row."""
    return {row["method"], *row.get("aliases", ())}


def paper_row(table: dict, method: str, scale: int | None) -> dict | None:
    for row in table["rows"]:
        if method in row_keys(row) and row["scale"] == scale:
            return row
    return None


def paper_value(row: dict | None, benchmark: str, metric: str) -> float | None:
    if row is None:
        return None
    return (row["results"].get(benchmark) or {}).get(metric)


def paper_cost(table: dict, row: dict | None, quantity: str) -> float | None:
    """A row's ``params`` or ``flops_g``, else the table's student's (one student for every
    method) at the scale it was counted for (MCAD-KD's Tab. 2 gives the x4 network; its x2 and
    x3 students are other sizes the paper does not print); a row's null (not published) stays
    None rather than borrowing the student's."""
    if row is not None and quantity in row:
        return row[quantity]
    student = table.get("student") or {}
    counted_at = student.get("scale")
    if row is not None and counted_at is not None and row.get("scale") != counted_at:
        return None
    return student.get(quantity)


def column_maxima(table: dict) -> dict:
    """Per scale, benchmark and metric: the methods with the highest value (all on a tie)."""
    best: dict = {}
    for row in table["rows"]:
        for benchmark, values in row["results"].items():
            for metric, value in (values or {}).items():
                if value is None:
                    continue
                cell = best.setdefault(str(row["scale"]), {}).setdefault(benchmark, {})
                top = cell.get(metric)
                if top is None or value > top[0]:
                    cell[metric] = (value, [row["method"]])
                elif value == top[0]:
                    top[1].append(row["method"])
    return {
        scale: {b: {m: methods for m, (_, methods) in ms.items()} for b, ms in by_set.items()}
        for scale, by_set in best.items()
    }
