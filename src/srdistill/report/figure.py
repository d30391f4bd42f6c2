"""The trade-off figure: PSNR against parameter count, our runs beside the paper's rows.

Our runs are placed at the parameter count they recorded (results.json ``params``) and the
paper's rows at the paper's counts; a run without a count is left out rather than drawn at the
paper's model size, which may be a different network."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from srdistill.report.paper import paper_params, paper_row
from srdistill.report.tables import Record, scale_name


@dataclass(frozen=True)
class Point:
    scale: int | None
    label: str
    params: float
    psnr: float
    source: str  # "ours" or "paper"


def tradeoff_points(records: list[Record], table: dict, run_params: dict) -> list[Point]:
    """Ours and the paper's points on the last benchmark of the records (the hardest)."""
    psnr = [r for r in records if r.metric == "psnr"]
    if not psnr:
        return []
    last = [r for r in psnr if r.benchmark == psnr[-1].benchmark]
    points = []
    for r in last:
        ours = run_params.get((r.scale, r.method))
        if ours:
            points.append(Point(r.scale, r.label, float(ours), r.mean, "ours"))
        theirs = paper_params(table, paper_row(table, r.method, r.scale))
        if theirs and r.paper is not None:
            points.append(Point(r.scale, r.label, float(theirs), r.paper, "paper"))
    return points


def write_tradeoff(path: Path, points: list[Point], benchmark: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot as plt

    scales = sorted({p.scale for p in points}, key=lambda s: (s is None, s or 0))
    fig, axes = plt.subplots(1, len(scales), figsize=(5 * len(scales), 4), squeeze=False)
    for ax, scale in zip(axes[0], scales, strict=True):
        for source, marker in (("ours", "o"), ("paper", "x")):
            chosen = [p for p in points if p.scale == scale and p.source == source]
            if not chosen:
                continue
            label = "ours (mean over seeds)" if source == "ours" else "paper"
            ax.scatter(
                [p.params for p in chosen], [p.psnr for p in chosen], marker=marker, label=label
            )
            for p in chosen:
                ax.annotate(
                    p.label,
                    (p.params, p.psnr),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel(f"{benchmark} PSNR-Y (dB)")
        ax.set_title(scale_name(scale))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
