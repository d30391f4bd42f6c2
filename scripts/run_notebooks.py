"""Execute the notebooks top to bottom on copies, so the files in git keep no outputs.

python scripts/run_notebooks.py [NOTEBOOK ...] [--out outputs/notebooks/executed] [--timeout 600]

Each notebook runs in a fresh ``python3`` kernel of this interpreter, in the notebooks folder;
the executed copies (with their outputs and figures) are written to --out. A failing cell (an
error, a cell over --timeout seconds, a dead kernel) stops that notebook, never the later ones;
the failed notebooks are listed at the end, one line each, and the exit code is 1. A notebook
that cannot be read or an --out that cannot be written is one line and exit code 2, before any
notebook runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def one_line(text) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def read_notebooks(paths: list[Path]) -> list:
    """Every notebook parsed, before any runs; a ValueError naming the first unreadable one."""
    import nbformat

    notebooks = []
    for path in paths:
        try:
            notebooks.append(nbformat.read(path, as_version=4))
        except Exception as err:  # noqa: BLE001 - nbformat's errors for a file that is not JSON
            # (NotJSONError) or JSON that is no notebook (jsonschema, KeyError, AttributeError)
            reason = one_line(err)[:200] or type(err).__name__
            raise ValueError(f"{path}: not a readable notebook ({reason})") from err
    return notebooks


def execute(notebook, path: Path, out_dir: Path, timeout: int) -> Path:
    """Run ``notebook`` (read from ``path``) in a fresh kernel; write the executed copy to
    ``out_dir`` (also on failure)."""
    import nbformat
    from nbclient import NotebookClient

    from srdistill.outputs import write_text

    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    target = out_dir / path.name
    try:
        client.execute()
    finally:
        write_text(target, nbformat.writes(notebook), "--out")
    return target


def failure_reason(err: Exception, timeout: int) -> str:
    """What stopped a notebook, in one line."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if isinstance(err, CellTimeoutError):
        return f"a cell ran longer than --timeout {timeout} s"
    if isinstance(err, CellExecutionError):
        return f"a cell raised {err.ename}: {one_line(err.evalue)}"
    if isinstance(err, DeadKernelError):
        return f"the kernel died ({one_line(err)})"
    return f"{type(err).__name__}: {one_line(err)}"


def run_all(paths: list[Path], notebooks: list, out_dir: Path, timeout: int) -> list[str]:
    """Run every notebook; the failed ones as ``name: reason`` lines."""
    from nbclient.exceptions import CellExecutionError

    failures = []
    for path, notebook in zip(paths, notebooks, strict=True):
        start = time.perf_counter()
        try:
            target = execute(notebook, path.resolve(), out_dir, timeout)
        except Exception as err:  # noqa: BLE001 - one notebook's failure must not stop the rest
            details = f"\n{err}" if isinstance(err, CellExecutionError) else ""
            print(f"{path.name}: FAILED{details}", file=sys.stderr)
            failures.append(f"{path}: {failure_reason(err, timeout)}")
            continue
        print(f"{path.name}: ran in {time.perf_counter() - start:.0f} s -> {target}")
    return failures


def check_plan(paths: list[Path], out_dir: Path, timeout: int) -> None:
    """Refuse, before any notebook runs, what would lose a file: an executed copy written over
    its source notebook (the copies exist so the sources keep no outputs) or over another
    notebook's copy of the same name; and a --timeout that would switch timeouts off."""
    if timeout < 1:
        raise ValueError(f"--timeout {timeout}: give the seconds a cell may run, at least 1")
    from srdistill.outputs import refuse_overwriting

    seen: dict[str, Path] = {}
    for path in paths:
        if path.name in seen:
            raise ValueError(
                f"{seen[path.name]} and {path} would both be written to {out_dir / path.name}; "
                "run them with different --out folders"
            )
        seen[path.name] = path
        refuse_overwriting(out_dir / path.name, [path], "--out")


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
    from srdistill.outputs import ensure_writable_dir

    try:
        check_plan(paths, args.out, args.timeout)
        notebooks = read_notebooks(paths)
        ensure_writable_dir(args.out, "--out")
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failures = run_all(paths, notebooks, args.out, args.timeout)
    for line in failures:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
