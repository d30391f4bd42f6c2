"""The trade-off figures: PSNR against parameter count and against FLOPs, our runs beside the
paper's rows.

FLOPs follow the papers' convention (MCAD-KD Tab. 2, the NTIRE efficient-SR reports): G
multiply-accumulates of one forward at an LR input of 3x256x256, results.json and
paper_numbers.json ``flops_g``. Our runs are placed at the count they recorded (results.json
``params``, ``flops_g``) and the paper's rows at the paper's counts (a row's own, else the table's
student's); a run or row without a count is left out rather than drawn at the paper's model size,
which may be a different network."""

from __future__ import annotations

import io
from dataclasses import dataclass

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


def points_benchmark(records: list[Record]) -> str | None:
    """The benchmark the figures show: the records' last (the hardest)."""
    return records[-1].benchmark if records else None


def tradeoff_points(
    records: list[Record], table: dict, run_values: dict, quantity: Quantity = PARAMS
) -> list[Point]:
    """Ours and the paper's points on the last benchmark of the records (the hardest), at
    ``quantity``: ``run_values`` maps (scale, method) to the runs' count of it."""
    last = [r for r in records if r.metric == "psnr" and r.benchmark == points_benchmark(records)]
    points = []
    for r in last:
        ours = run_values.get((r.scale, r.method))
        if ours and r.mean is not None:
            points.append(Point(r.scale, r.label, float(ours), r.mean, "ours"))
        theirs = paper_cost(table, paper_row(table, r.method, r.scale), quantity.key)
        if theirs and r.paper is not None:
            points.append(Point(r.scale, r.label, float(theirs), r.paper, "paper"))
    return points


SOURCE_MARKERS = {"ours": ("o", "ours (mean over seeds)"), "paper": ("x", "paper")}
LEGEND_ROWS = 18  # entries per legend column: a long list wraps instead of leaving the figure
PANEL_WIDTH, LEGEND_WIDTH, HEIGHT = 4.5, 2.0, 4.0  # inches


def method_colours(labels: list[str]) -> dict[str, tuple]:
    """One colour per method, in the order given: tab20's strong half first, then its pale half
    (10 clearly distinct colours, 20 in all); more methods than that share turbo's range."""
    from matplotlib import colormaps

    if len(labels) > 20:
        turbo = colormaps["turbo"]
        return {label: turbo(i / (len(labels) - 1)) for i, label in enumerate(labels)}
    tab20 = colormaps["tab20"].colors
    return dict(zip(labels, [*tab20[0::2], *tab20[1::2]], strict=False))


def _draw_scale(ax, points: list[Point], colours: dict, benchmark: str, quantity: Quantity):
    """One scale's panel: a method's colour, ours as dots and the paper's as crosses; no text at
    the points (methods with nearly equal counts and PSNR would print over each other)."""
    from matplotlib.ticker import MaxNLocator

    for source, (marker, name) in SOURCE_MARKERS.items():
        chosen = [p for p in points if p.source == source]
        if chosen:
            ax.scatter([p.x for p in chosen], [p.psnr for p in chosen], marker=marker,
                       c=[colours[p.label] for p in chosen], label=name)  # fmt: skip
    xs = [p.x for p in points]
    if max(xs) > 10 * min(xs):  # a log axis over less than a decade has unreadable ticks
        ax.set_xscale("log")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(4))  # wide labels (parameter counts)
    ax.set_xlabel(quantity.axis_label)
    ax.set_ylabel(f"{benchmark} PSNR-Y (dB)", parse_math=False)
    ax.set_title(scale_name(points[0].scale))


def _legend(fig, colours: dict) -> None:
    """One legend beside the panels, which matplotlib stacks without overlap: the two markers,
    then each method once with its colour. Method names are the runs' text: drawn as they read,
    never parsed as mathtext, which a stray ``$`` would make fail."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], marker=marker, color="dimgrey", linestyle="none", label=name)
        for marker, name in SOURCE_MARKERS.values()
    ]
    handles += [Patch(color=colour, label=label) for label, colour in colours.items()]
    legend = fig.legend(handles=handles, loc="outside right upper", fontsize=7,
                        ncols=-(-len(handles) // LEGEND_ROWS))  # fmt: skip
    for text in legend.get_texts():
        text.set_parse_math(False)


def tradeoff_figure(points: list[Point], benchmark: str, quantity: Quantity = PARAMS):
    """The figure: a panel per scale and one legend, laid out (constrained) so that nothing
    covers a panel. A method keeps its colour in every panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scales = sorted({p.scale for p in points}, key=lambda s: (s is None, s or 0))
    colours = method_colours(list(dict.fromkeys(p.label for p in points)))
    fig = Figure(figsize=(PANEL_WIDTH * len(scales) + LEGEND_WIDTH, HEIGHT), layout="constrained")
    FigureCanvasAgg(fig)  # files only, no display, and no global state (pyplot's)
    axes = fig.subplots(1, len(scales), squeeze=False)
    for ax, scale in zip(axes[0], scales, strict=True):
        _draw_scale(ax, [p for p in points if p.scale == scale], colours, benchmark, quantity)
    _legend(fig, colours)
    return fig


def render_tradeoff(points: list[Point], benchmark: str, quantity: Quantity = PARAMS) -> bytes:
    """The figure as PNG bytes: rendered in memory, so that no file is touched until every
    file of the report is ready."""
    png = io.BytesIO()
    tradeoff_figure(points, benchmark, quantity).savefig(png, format="png", dpi=120)
    return png.getvalue()


def tradeoff_figures(records: list[Record], table: dict, runs: list[dict]) -> dict[str, bytes]:
    """Every trade-off figure by file name; ``runs`` are the runs' identities (scale, method
    and the counts). A figure with no point is left out with one line saying why."""
    figures = {}
    for quantity in QUANTITIES:
        run_values = {(who["scale"], who["method"]): who[quantity.key] for who in runs}
        points = tradeoff_points(records, table, run_values, quantity)
        if points:
            figures[quantity.file_name] = render_tradeoff(
                points, points_benchmark(records), quantity
            )
        else:
            print(f"no {quantity.file_name}: neither the runs nor the paper give {quantity.noun}")
    return figures
