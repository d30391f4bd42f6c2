"""Execute the notebooks top to bottom on copies, so the files in git keep no outputs.

python scripts/run_notebooks.py [NOTEBOOK ...] [--out outputs/notebooks/executed] [--timeout 600]

Each notebook runs in a fresh ``python3`` kernel of this interpreter, in the notebooks folder;
the executed copies (with their outputs and figures) are written to --out. A failing cell stops
that notebook with its error and makes the exit code 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(path: Path, out_dir: Path, timeout: int) -> Path:
    """Run ``path`` in a fresh kernel; write the executed copy to ``out_dir`` (also on failure)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / path.name
    try:
        client.execute()
    finally:
        nbformat.write(notebook, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", type=Path, nargs="*", metavar="NOTEBOOK")
    parser.add_argument("--out", type=Path, default=Path("outputs/notebooks/executed"))
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: no notebook {', '.join(missing)}", file=sys.stderr)
        return 2
    from nbclient.exceptions import CellExecutionError

    failed = 0
    for path in paths:
        start = time.perf_counter()
        try:
            target = execute(path.resolve(), args.out, args.timeout)
        except CellExecutionError as err:
            failed += 1
            print(f"{path.name}: FAILED\n{err}", file=sys.stderr)
            continue
        print(f"{path.name}: ran in {time.perf_counter() - start:.0f} s -> {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
