"""Plot the per-term gradient share of training runs (``module.grad_share_every``).

python scripts/plot_grad_share.py RUN_DIR[=LABEL] ... --out docs/grad_share.png [--term cont]

Two panels over the training steps, one line per run: the term's gradient norm on the student
relative to the reconstruction term's (ratio) and the cosine between the two gradients.
``--term others`` (the default) is the sum of every term besides reconstruction.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from srdistill.outputs import write_atomic


class PlotError(ValueError):
    """A run or option the plot cannot use; the message is one line naming it."""


def parse_run(arg: str) -> tuple[Path, str]:
    """``RUN_DIR=LABEL`` or ``RUN_DIR`` (labelled by its folder name)."""
    folder, _, label = arg.partition("=")
    return Path(folder), label or Path(folder).name


def load_history(run_dir: Path, term: str) -> tuple[list[int], list[float], list[float]]:
    """Steps, ratios and cosines of ``term`` in a run's results.json."""
    path = run_dir / "results.json"
    if not path.is_file():
        raise PlotError(f"{path}: no results.json; give a finished train.py run folder")
    try:
        history = (json.loads(path.read_text()).get("grad_share") or {}).get("history") or []
    except (ValueError, AttributeError) as err:
        raise PlotError(f"{path}: not a results.json ({err})") from err
    if not history:
        raise PlotError(f"{path} has no grad_share history; train with module.grad_share_every=K")
    rows = [r for r in history if f"{term}/ratio" in r]
    if not rows:
        terms = sorted({k.rsplit("/", 1)[0] for r in history for k in r if "/" in k})
        raise PlotError(f"{path}: no term {term!r} in grad_share; choose --term from {terms}")
    nan = float("nan")  # a non-finite value is stored as null
    ratio = [nan if r[f"{term}/ratio"] is None else r[f"{term}/ratio"] for r in rows]
    cos = [nan if r[f"{term}/cos"] is None else r[f"{term}/cos"] for r in rows]
    return [r["step"] for r in rows], ratio, cos


def plot(runs: list[tuple[Path, str]], term: str, out: Path) -> Path:
    curves = [(label, *load_history(folder, term)) for folder, label in runs]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 6))
    for label, steps, ratio, cos in curves:
        top.plot(steps, ratio, label=label)
        bottom.plot(steps, cos, label=label)
    top.set_ylabel(f"||g_{term}|| / ||g_rec||")
    top.set_yscale("log")
    bottom.set_ylabel(f"cos(g_{term}, g_rec)")
    bottom.axhline(0.0, color="gray", linewidth=0.5)
    bottom.set_ylim(-1.05, 1.05)
    bottom.set_xlabel("generator step")
    top.legend()
    top.set_title(f"gradient share of '{term}' on the student")
    fig.tight_layout()
    write_atomic(out, lambda f: fig.savefig(f, format="png", dpi=120), "--out")
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR[=LABEL]")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--term", default="others", help="loss term to plot (default: others)")
    args = parser.parse_args(argv)
    try:
        out = plot([parse_run(r) for r in args.runs], args.term, args.out)
    except (PlotError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
