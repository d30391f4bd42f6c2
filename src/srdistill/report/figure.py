"""The trade-off figures: PSNR against parameter count and against FLOPs, our runs beside the
paper's rows.

FLOPs follow the papers' convention (MCAD-KD Tab. 2, the NTIRE efficient-SR reports): G
multiply-accumulates of one forward at an LR input of 3x256x256, results.json and
paper_numbers.json ``flops_g``. Our runs are placed at the count they recorded (results.json
``params``, ``flops_g``) and the paper's rows at the paper's counts (a row's own, else the table's
student's); a run or row without a count is left out rather than drawn at the paper's model size,
which may be a different network."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from srdistill.report.paper import paper_cost, paper_row
from srdistill.report.tables import Record, scale_name


@dataclass(frozen=True)
class Quantity:
    """What a figure's x axis counts: the key of results.json and paper_numbers.json."""

    key: str
    axis_label: str
    file_name: str
    noun: str  # in the message when nothing is counted


PARAMS = Quantity("params", "parameters", "tradeoff.png", "parameter counts")
FLOPS = Quantity(
    "flops_g",
    "GFLOPs (multiply-accumulates at LR 3x256x256)",
    "tradeoff_flops.png",
    "FLOPs",
)
QUANTITIES = (PARAMS, FLOPS)


@dataclass(frozen=True)
class Point:
    scale: int | None
    label: str
    x: float  # the quantity the figure is drawn against
    psnr: float
    source: str  # "ours" or "paper"


def tradeoff_points(
    records: list[Record], table: dict, run_values: dict, quantity: Quantity = PARAMS
) -> list[Point]:
    """Ours and the paper's points on the last benchmark of the records (the hardest), at
    ``quantity``: ``run_values`` maps (scale, method) to the runs' count of it."""
    psnr = [r for r in records if r.metric == "psnr"]
    if not psnr:
        return []
    last = [r for r in psnr if r.benchmark == psnr[-1].benchmark]
    points = []
    for r in last:
        ours = run_values.get((r.scale, r.method))
        if ours:
            points.append(Point(r.scale, r.label, float(ours), r.mean, "ours"))
        theirs = paper_cost(table, paper_row(table, r.method, r.scale), quantity.key)
        if theirs and r.paper is not None:
            points.append(Point(r.scale, r.label, float(theirs), r.paper, "paper"))
    return points


def write_tradeoff(
    path: Path, points: list[Point], benchmark: str, quantity: Quantity = PARAMS
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    scales = sorted({p.scale for p in points}, key=lambda s: (s is None, s or 0))
    fig, axes = plt.subplots(1, len(scales), figsize=(5 * len(scales), 4), squeeze=False)
    for ax, scale in zip(axes[0], scales, strict=True):
        for source, marker in (("ours", "o"), ("paper", "x")):
            chosen = [p for p in points if p.scale == scale and p.source == source]
            if not chosen:
                continue
            label = "ours (mean over seeds)" if source == "ours" else "paper"
            ax.scatter([p.x for p in chosen], [p.psnr for p in chosen], marker=marker, label=label)
            for p in chosen:
                ax.annotate(
                    p.label, (p.x, p.psnr), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
        xs = [p.x for p in points if p.scale == scale]
        if max(xs) > 10 * min(xs):  # a log axis over less than a decade has unreadable ticks
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(4))  # wide labels (parameter counts)
        ax.set_xlabel(quantity.axis_label)
        ax.set_ylabel(f"{benchmark} PSNR-Y (dB)")
        ax.set_title(scale_name(scale))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_tradeoffs(folder: Path, records: list[Record], table: dict, runs: list[dict]) -> None:
    """Every trade-off figure into ``folder``; ``runs`` are the runs' identities (scale, method
    and the counts). A figure with no point is skipped with one line saying why."""
    for quantity in QUANTITIES:
        run_values = {(who["scale"], who["method"]): who[quantity.key] for who in runs}
        points = tradeoff_points(records, table, run_values, quantity)
        if points:
            write_tradeoff(folder / quantity.file_name, points, records[-1].benchmark, quantity)
        else:
            print(f"no {quantity.file_name}: neither the runs nor the paper give {quantity.noun}")
