"""Beside every table: the weights each group of runs trained at, and how hard each term pulled.

A row of a comparison says little without the weights behind it: configured (the loss config,
whose comments give their provenance) or balanced (``module.balance``: measured per run, so they
differ between seeds). Read from results.json's ``weights`` and ``balance``; the median gradient
share of each term (||g_term|| / ||g_rec|| on the student, ``module.grad_share_every``) comes from
its ``grad_share`` history, over the steps after balancing when the runs were balanced.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from srdistill.report.collect import Run, identity
from srdistill.report.escape import markdown_row, markdown_rule

REFERENCE = "rec"


def _number(value: float) -> str:
    return f"{value:.3g}"


def _weights_cell(runs: list[Run]) -> str:
    recorded = [r["weights"] for _, r in runs if isinstance(r.get("weights"), dict)]
    if not recorded:
        return "not recorded"
    cells = []
    for term in dict.fromkeys(t for weights in recorded for t in weights):
        values = [w[term] for w in recorded if isinstance(w.get(term), int | float)]
        if not values:
            continue
        low, high = _number(min(values)), _number(max(values))
        spread = "" if low == high else f" ({low}..{high})"
        cells.append(f"{term} {_number(statistics.median(values))}{spread}")
    return ", ".join(cells)


def _how(runs: list[Run]) -> str:
    balanced = [r for _, r in runs if isinstance(r.get("balance"), dict)]
    if not balanced:
        return "configured"
    targets = {_target_text(r["balance"].get("target"), r.get("weights")) for r in balanced}
    steps = sorted({r["balance"].get("steps") for r in balanced}, key=str)
    text = f"balanced to {' / '.join(sorted(targets))} over {','.join(map(str, steps))} steps"
    unfinished = sum(r["balance"].get("weights") is None for r in balanced)
    if unfinished:
        text += f"; calibration unfinished in {unfinished} run(s) (terms at weight 0)"
    unbalanced = len(runs) - len(balanced)
    return text + (f"; {unbalanced} run(s) configured" if unbalanced else "")


def _target_text(target, weights) -> str:
    """``share X`` when every term but rec was balanced to X, else ``term X`` each."""
    if not isinstance(target, Mapping):
        return str(target)
    shares = {_number(v) for v in target.values() if isinstance(v, int | float)}
    others = {t for t in (weights if isinstance(weights, dict) else {}) if t != REFERENCE}
    if len(shares) == 1 and others <= set(target):
        return f"share {shares.pop()}"
    return " ".join(f"{k} {_number(v)}" for k, v in target.items() if isinstance(v, int | float))


def _after_balancing(result: dict) -> int:
    balance = result.get("balance")
    steps = balance.get("steps") if isinstance(balance, dict) else 0
    return steps if isinstance(steps, int) else 0


def _shares_cell(runs: list[Run]) -> str:
    ratios: dict[str, list[float]] = {}
    for _, result in runs:
        history = (result.get("grad_share") or {}).get("history", [])
        first = _after_balancing(result)
        for record in history:
            step = record.get("step")
            if not isinstance(step, int | float) or step < first:
                continue
            for key, value in record.items():
                if key.endswith("/ratio") and isinstance(value, int | float):
                    ratios.setdefault(key[: -len("/ratio")], []).append(value)
    if not ratios:
        return "not logged"
    return ", ".join(f"{term} {_number(statistics.median(v))}" for term, v in ratios.items())


def weights_section(grouped: Mapping[str, list[Run]], group: str) -> list[str]:
    """Markdown lines (a heading and a table), or none when no run recorded weights or shares."""
    runs = [run for members in grouped.values() for run in members]
    if not any("weights" in r or "grad_share" in r for _, r in runs):
        return []
    head = [group, "runs", "weights", "how", "median gradient share vs rec"]
    lines = [
        "",
        "Weights each group trained at (median over its runs, range when they differ) and each "
        "term's median gradient share over the logged steps of its runs (after balancing):",
    ]
    lines += ["", markdown_row(head), markdown_rule(len(head))]
    for name, members in grouped.items():
        cells = [_weights_cell(members), _how(members), _shares_cell(members)]
        lines.append(markdown_row([name, len(members), *cells]))
    return lines


def by_method(runs: list[Run]) -> dict[str, list[Run]]:
    """Paper mode's groups: ``<method> x<scale>`` (as results.json's tags or overrides say)."""
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        who = identity(*run)
        scale = f" x{who['scale']}" if who["scale"] is not None else ""
        grouped.setdefault(f"{who['method']}{scale}", []).append(run)
    return dict(sorted(grouped.items()))
