"""A sweep's runs: each results.json with what tells the run apart (its tags and overrides)."""

from __future__ import annotations

import json
from pathlib import Path


class ReportError(ValueError):
    """A folder, option or file the report cannot use; reported as one ``error:`` line."""


Run = tuple[dict, dict]  # (what tells the run apart, its results.json)


def _overrides(run_dir: Path) -> dict:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    return dict(line.lstrip("- ").split("=", 1) for line in lines if "=" in line)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReportError(f"{path} is not valid JSON ({err.msg}, line {err.lineno})") from None


def _number_or_null(value) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _checked(path: Path, result) -> dict:
    """A results.json as train.py writes it: an object whose ``val`` maps metric names to
    numbers, whose ``tags`` is an object and whose ``params`` and ``flops_g`` are numbers or
    null; anything else is named, not half-read."""
    if not isinstance(result, dict):
        raise ReportError(f"{path}: not a results.json (a JSON object is expected)")
    val, tags = result.get("val", {}), result.get("tags", {})
    if not isinstance(val, dict) or not all(_number_or_null(v) for v in val.values()):
        raise ReportError(f"{path}: 'val' must map metric names to numbers")
    if not isinstance(tags, dict | None):
        raise ReportError(f"{path}: 'tags' must be an object")
    for key in ("params", "flops_g"):  # the trade-off figures' x values
        if not _number_or_null(result.get(key)):
            raise ReportError(f"{path}: '{key}' must be a number or null")
    scale = (tags or {}).get("scale")
    if scale is not None and (isinstance(scale, bool) or not str(scale).isdigit()):
        raise ReportError(f"{path}: tags.scale must be a whole number, got {scale!r:.40}")
    return result


def load_runs(roots: Path | list[Path]) -> list[Run]:
    """Every results.json below each root; a root without one is an error naming it."""
    runs = []
    for root in [roots] if isinstance(roots, Path) else roots:
        paths = sorted(root.rglob("results.json")) if root.is_dir() else []
        if not paths:
            raise ReportError(f"{root}: no results.json below it; give the folder of a sweep")
        for path in paths:
            result = _checked(path, _read_json(path))
            tags = {k: str(v) for k, v in (result.get("tags") or {}).items()}
            # tags fill what the overrides leave out, so ``--group method`` works as well
            args = {**tags, **_overrides(path.parent)}
            args["folder"] = path.parent.parent.name
            args["run_dir"] = str(path.parent)
            runs.append((args, result))
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


def _as_val(metrics: dict) -> dict:
    out = {}
    for name, values in metrics.items():
        out[f"val/{name}/psnr_y"], out[f"val/{name}/ssim_y"] = values["psnr"], values["ssim"]
    return out


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
        if not (folder / name).is_file():
            raise ReportError(f"--eval-json: {folder / name} does not exist")
        scored.append((args, {**result, "val": _as_val(_read_json(folder / name))}))
        control = folder / "without_teacher" / name
        if control.is_file():
            label = f"{args.get(group, '?')} without teacher"
            scored.append(({**args, group: label}, {**result, "val": _as_val(_read_json(control))}))
    return scored
