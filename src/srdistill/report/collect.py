"""A sweep's runs: each results.json with what tells the run apart (its tags and overrides).

Every results.json that train.py writes is read (strict JSON, a non-finite metric as null);
anything else is refused in one line naming the file and what is wrong, and the whole report
with it: a researcher would rather see a loud refusal than a table silently missing a run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from srdistill.counts import is_count
from srdistill.report.inputs import ReportError, read_json, read_text

RESULTS = "results.json"


Run = tuple[dict, dict]  # (what tells the run apart, its results.json)


def metric_key(benchmark: str, metric: str) -> str:
    """The key of ``val`` train.py logs a benchmark's metric under (``val/Set5/psnr_y``)."""
    return f"val/{benchmark}/{metric}_y"


def scored_benchmarks(val: dict) -> set[str]:
    """The benchmarks ``val`` holds a PSNR key for; a set name may itself hold a ``/``."""
    head, tail = "val/", "/psnr_y"
    return {k[len(head) : -len(tail)] for k in val if k.startswith(head) and k.endswith(tail)}


def _number_or_null(value) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _numbers(mapping) -> bool:
    return isinstance(mapping, dict) and all(_number_or_null(v) for v in mapping.values())


def _scores(table) -> bool:
    """``{set: {"psnr": ..., "ssim": ...}}`` (eval.py's file, a final-table row)."""
    return isinstance(table, dict) and all(
        isinstance(v, dict) and all(_number_or_null(v.get(m)) for m in ("psnr", "ssim"))
        for v in table.values()
    )


def _whole(value) -> bool:
    return is_count(value, minimum=0)


def _tags_ok(tags) -> bool:
    """The tags the report reads are plain (any other tag may be anything: it is only shown)."""
    if tags is None:
        return True
    plain = str | int | float | bool | None
    return (
        isinstance(tags, dict)
        and all(isinstance(tags.get(key), plain) for key in ("table", "method", "scale", "seed"))
        and all(_number_or_null(tags.get(key)) for key in ("params", "flops_g"))
    )


def _final_table_ok(table) -> bool:
    return isinstance(table, dict) and all(_scores(row) for row in table.values())


def _grad_share_ok(record) -> bool:
    history = record.get("history", []) if isinstance(record, dict) else None
    return isinstance(history, list) and all(_numbers(entry) for entry in history)


def _balance_ok(record) -> bool:
    if record is None:
        return True
    if not isinstance(record, dict):
        return False
    target, weights = record.get("target"), record.get("weights")
    target_ok = _numbers(target) or (_number_or_null(target) and target is not None)
    return target_ok and _whole(record.get("steps")) and (weights is None or _numbers(weights))


def _problem(result) -> str | None:
    """What makes ``result`` something train.py does not write, or None."""
    if not isinstance(result, dict):
        return "not a results.json (a JSON object is expected)"
    checks = (
        (_numbers(result.get("val", {})), "'val' must map metric names to numbers or null"),
        (_tags_ok(result.get("tags")), "'tags' must be an object; its table, method, scale, "
         "seed plain values, its params, flops_g numbers"),
        (_whole(result.get("steps", 0)), "'steps' must be a whole number"),
        (_final_table_ok(result.get("comparison", {})), "'comparison' must map networks to "
         "{set: {psnr, ssim}}"),
        (_grad_share_ok(result.get("grad_share", {})), "'grad_share' must hold a 'history' "
         "list of {name: number}"),
        (_numbers(result.get("weights", {})), "'weights' must map term names to numbers"),
        (_balance_ok(result.get("balance")), "'balance' must hold 'target' (a number or a map "
         "of numbers), 'steps' (a whole number) and 'weights' (a map of numbers or null)"),
        (_number_or_null(result.get("params")), "'params' must be a number or null"),
        (_number_or_null(result.get("flops_g")), "'flops_g' must be a number or null"),
    )  # fmt: skip
    problem = next((message for ok, message in checks if not ok), None)
    scale = (result.get("tags") or {}).get("scale")
    if problem is None and scale is not None and not whole_number_text(str(scale)):
        problem = f"tags.scale must be a whole number, got {scale!r:.40}"
    return problem


def whole_number_text(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes ``²`` and other digits int() refuses."""
    return text.isascii() and text.isdigit()


def _checked(path: Path, result) -> dict:
    problem = _problem(result)
    if problem:
        raise ReportError(f"{path}: {problem}")
    return result


def _overrides(run_dir: Path) -> dict:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    lines = read_text(path).splitlines()
    return dict(line.lstrip("- ").split("=", 1) for line in lines if "=" in line)


def _run_args(path: Path, result: dict) -> dict:
    """What tells the run of ``path`` apart: its tags, then its overrides, which win."""
    tags = {k: str(v) for k, v in (result.get("tags") or {}).items()}
    # tags fill what the overrides leave out, so ``--group method`` works as well
    args = {**tags, **_overrides(path.parent)}
    scale = args.get("scale")
    if "scale" not in tags and scale is not None and not whole_number_text(scale):
        where = path.parent / ".hydra" / "overrides.yaml"
        raise ReportError(f"{where}: scale must be a whole number, got {scale!r:.40}")
    args["folder"] = path.parent.parent.name
    args["run_dir"] = str(path.parent)
    return args


def _raise(err: OSError):
    raise err


def results_files(root: Path) -> list[Path]:
    """Every results.json below ``root``, following symbolic links to run folders; a folder
    reached a second time (two links to one run, a link to a folder above) is read once, with
    one warning line, so that no run counts twice."""
    found, seen = [], {}
    for folder, subfolders, files in os.walk(root, onerror=_raise, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            print(f"warning: {folder} skipped: the same folder as {seen[real]}", file=sys.stderr)
            subfolders.clear()
            continue
        seen[real] = folder
        subfolders.sort()  # which of two links to one run is read does not depend on the disk
        if RESULTS in files:
            found.append(Path(folder) / RESULTS)
    return sorted(found)


def _new_files(root: Path, paths: list[Path], read: dict[str, Path]) -> list[Path]:
    """The ``paths`` of ``root`` not read from an earlier root (the same file by its resolved
    path: ``sw sw``, or a sweep and a folder inside it); what was skipped is one warning line."""
    new = [p for p in paths if os.path.realpath(p) not in read]
    skipped = [p.parent for p in paths if p not in new]
    if skipped:
        first = sorted({str(read[os.path.realpath(p / RESULTS)]) for p in skipped})
        runs = "every run below it" if not new else ", ".join(map(str, skipped))
        print(
            f"warning: {root}: skipped {runs}: already read below {', '.join(first)}",
            file=sys.stderr,
        )
    read |= {os.path.realpath(p): root for p in new}
    return new


def load_runs(roots: Path | list[Path]) -> list[Run]:
    """Every results.json below each root, each file once however many roots reach it; a root
    without one is an error naming it."""
    runs, read = [], {}
    for root in [roots] if isinstance(roots, Path) else roots:
        paths = results_files(root) if root.is_dir() else []
        if not paths:
            raise ReportError(f"{root}: no results.json below it; give the folder of a sweep")
        for path in _new_files(root, paths, read):
            result = _checked(path, read_json(path))
            runs.append((_run_args(path, result), result))
    return runs


def identity(args: dict, result: dict) -> dict:
    """A run's table, method, scale and seed: its tags, else its overrides and folder; and the
    deployed student's size and cost (``params``, ``flops_g``) as results.json records them."""
    tags = result.get("tags") or {}
    scale = tags.get("scale", args.get("scale"))
    return {
        "table": tags.get("table"),
        "method": str(tags.get("method") or args.get("loss") or args["folder"]),
        "scale": int(scale) if scale is not None else None,
        "seed": str(tags.get("seed", args.get("seed", "0"))),
        "params": result.get("params", tags.get("params")),
        "flops_g": result.get("flops_g", tags.get("flops_g")),
    }


def _as_val(scores: dict) -> dict:
    out = {}
    for name, values in scores.items():
        for metric in ("psnr", "ssim"):
            if metric in values:
                out[metric_key(name, metric)] = values[metric]
    return out


def read_scores(path: Path, option: str) -> dict:
    """An eval.py ``out=`` file (``{set: {psnr, ssim, ...}}``) in the shape of ``val``."""
    try:
        scores = read_json(path)
    except ReportError as err:
        raise ReportError(f"{option}: {err}") from None
    if not _scores(scores):
        raise ReportError(f"{option}: {path} must map sets to {{psnr, ssim}} (eval.py out=)")
    return _as_val(scores)


def deployed_metrics(result: dict) -> dict:
    """The final table's student row in the shape of ``result["val"]``."""
    table = result.get("comparison", {}).get("student")
    if table is None:
        raise ReportError("--deployed: a results.json has no final-table student row")
    return {**result, "val": _as_val(table)}


def eval_json_runs(runs: list[Run], group: str, name: str) -> list[Run]:
    """Runs scored by their eval.py files; controls (without_teacher/) as their own group."""
    scored = []
    for args, result in runs:
        folder = Path(args["run_dir"])
        if not (folder / name).exists():
            raise ReportError(f"--eval-json: {folder / name} does not exist")
        scored.append((args, {**result, "val": read_scores(folder / name, "--eval-json")}))
        control = folder / "without_teacher" / name
        if control.exists():  # a FIFO or a device is refused by read_input, not skipped
            label = f"{args.get(group, '?')} without teacher"
            control_val = read_scores(control, "--eval-json")
            scored.append(({**args, group: label, "run_dir": str(control.parent)},
                           {**result, "val": control_val}))  # fmt: skip
    return scored
