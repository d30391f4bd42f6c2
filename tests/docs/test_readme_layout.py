"""The README's Layout section names every module of the package, and only files that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "srdistill"


def layout_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def named_files(block: str) -> set[str]:
    """File names the block mentions; ``backbones/{edsr,rcan}.py`` names edsr.py and rcan.py."""
    names = {
        f"{stem}.py"
        for group in re.findall(r"\{([\w,]+)\}\.py", block)
        for stem in group.split(",")
    }
    return names | set(re.findall(r"\b(\w+\.py)\b", block))


def test_every_module_of_the_package_is_in_the_layout():
    modules = {p.name for p in PACKAGE.rglob("*.py") if not p.name.startswith("__")}
    missing = sorted(modules - named_files(layout_block()))
    assert not missing, f"README.md's Layout section does not name {missing}"


def test_every_file_the_layout_names_exists():
    folders = ("src", "scripts", "benchmarks", "tests", "examples", "notebooks")
    files = {p.name for folder in folders for p in (ROOT / folder).rglob("*.py")}
    files |= {p.name for p in ROOT.glob("*.py")}
    stale = sorted(named_files(layout_block()) - files)
    assert not stale, f"README.md's Layout section names files that do not exist: {stale}"
