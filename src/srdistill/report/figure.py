"""The trade-off figure: PSNR against parameter count, our runs beside the paper's rows."""

from __future__ import annotations

from pathlib import Path

from srdistill.report.paper import paper_params, paper_row
from srdistill.report.tables import Record, scale_name


def _params(record: Record, table: dict, run_params: dict) -> float | None:
    """The runs' own count, else the paper's row (or the table's student)."""
    recorded = run_params.get((record.scale, record.method))
    if recorded:
        return float(recorded)
    return paper_params(table, paper_row(table, record.method, record.scale))


def tradeoff_points(records: list[Record], table: dict, run_params: dict) -> list[tuple]:
    """(scale, label, params, our PSNR, the paper's PSNR) on the last benchmark (the hardest)."""
    psnr = [r for r in records if r.metric == "psnr"]
    if not psnr:
        return []
    benchmark = psnr[-1].benchmark
    points = []
    for r in psnr:
        params = _params(r, table, run_params)
        if r.benchmark == benchmark and params:
            points.append((r.scale, r.label, params, r.mean, r.paper))
    return points


def write_tradeoff(path: Path, points: list[tuple], benchmark: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot as plt

    scales = sorted({p[0] for p in points}, key=lambda s: (s is None, s or 0))
    fig, axes = plt.subplots(1, len(scales), figsize=(5 * len(scales), 4), squeeze=False)
    for ax, scale in zip(axes[0], scales, strict=True):
        mine = [p for p in points if p[0] == scale]
        ax.scatter([p[2] for p in mine], [p[3] for p in mine], label="ours (mean)", marker="o")
        paper = [p for p in mine if p[4] is not None]
        ax.scatter(
            [p[2] for p in paper], [p[4] for p in paper], label="paper", marker="x", color="k"
        )
        for _, label, params, ours, _ in mine:
            offset = {"xytext": (3, 3), "textcoords": "offset points"}
            ax.annotate(label, (params, ours), fontsize=7, **offset)
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel(f"{benchmark} PSNR-Y (dB)")
        ax.set_title(scale_name(scale))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
