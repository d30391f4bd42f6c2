"""srdistill's modules import each other without cycles, lazy (function-level) imports included:
a cycle means two concerns live in each other's module."""

from __future__ import annotations

import ast
from pathlib import Path

import srdistill

PACKAGE = Path(srdistill.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("srdistill"):
                named = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                named = [a.name for a in node.names]
            else:
                continue
            graph[name].update(t for t in named if t in modules and t != name)
    return graph


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start, or None."""
    seen, paths = set(), [[start]]
    while paths:
        path = paths.pop()
        for nxt in sorted(graph[path[-1]]):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                paths.append([*path, nxt])
    return None


def test_the_finder_sees_a_cycle_and_a_lazy_import():
    graph = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert cycle_through(graph, "a") == ["a", "b", "a"] and cycle_through(graph, "c") is None
    # the real graph: reading a file rebuilds a run through run_student, never through export
    assert "srdistill.models.run_student" in import_graph()["srdistill.models.from_file"]


def test_no_module_imports_itself_back():
    graph = import_graph()
    cycles = [cycle for name in graph if (cycle := cycle_through(graph, name))]
    assert not cycles, cycles[0]
