"""Every test docs/RELIABILITY.md names exists: a behaviour documented there stays covered."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "RELIABILITY.md"
TESTS = ROOT / "tests"
REFERENCE = re.compile(r"`([^`\s]*::[^`\s]+)`")


def files_named(name: str) -> list[Path]:
    if name.startswith("tests/"):
        return [ROOT / name] if (ROOT / name).is_file() else []
    return sorted(TESTS.rglob(Path(name).name))


def defines(path: Path, names: list[str]) -> bool:
    text = path.read_text()
    return all(re.search(rf"^\s*(?:def|class) {re.escape(n)}\b", text, re.M) for n in names)


def references() -> list[tuple[str, list[Path], list[str]]]:
    """(reference, candidate files, names) in reading order; ``::name`` and ``...[case]`` refer
    to the file named last before them."""
    found, files = [], []
    for ref in REFERENCE.findall(DOC.read_text()):
        if ref.startswith("..."):
            continue
        file, *names = ref.split("::")
        files = files_named(file) if file else files
        found.append((ref, files, [re.sub(r"\[.*$", "", n) for n in names if n]))
    return found


def test_reliability_names_only_tests_that_exist():
    refs = references()
    assert len(refs) > 100
    missing = [ref for ref, files, names in refs if not any(defines(f, names) for f in files)]
    assert not missing, f"docs/RELIABILITY.md names tests that do not exist: {missing}"
