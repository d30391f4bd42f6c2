"""Every Hydra command in the README and the user guide names options that exist.

The commands are parsed out of the fenced shell blocks and composed as Hydra would (a sweep's
first value stands for the sweep), so a renamed group or key breaks this test, not a user's run.
Placeholders (PATH, <date>, /data/...) are plain values to Hydra and compose as they are.
Leading environment assignments (``PYTHONPATH=examples/plugin python train.py ...``) are skipped,
and a ``hydra.searchpath`` is read from the repository root, as the docs run every command.
"""

from __future__ import annotations

import re
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.helpers.configs import compose_config
from tests.helpers.shared import REPO_ROOT

DOCS = ["README.md", "docs/GUIDE.md"]
ENTRY_POINTS = {"train.py": "train", "eval.py": "eval", "export.py": "export"}
ENTRY_POINTS["efficiency.py"] = "efficiency"
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")


def shell_commands(text: str) -> list[str]:
    """The commands of ```bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.split(" #")[0].strip() for line in joined.splitlines()]
    # shell variables stand for paths the user's own run has
    commands = [re.sub(r"\$\{?\w+\}?", "X", c) for c in commands]
    return [c for c in commands if c and not c.startswith("#")]


def hydra_commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for doc in DOCS:
        for command in shell_commands((REPO_ROOT / doc).read_text()):
            words = shlex.split(command)
            while words and ENV_ASSIGNMENT.match(words[0]):
                words = words[1:]
            scripts = [i for i, w in enumerate(words) if w.split("/")[-1] in ENTRY_POINTS]
            if scripts and words[0].split("/")[-1] in ("python", "python3", "srun", "torchrun"):
                at = scripts[0]
                args = [w for w in words[at + 1 :] if not w.startswith("-")]
                found.append((doc, ENTRY_POINTS[words[at].split("/")[-1]], args))
    return found


def first_of_each_sweep(args: list[str]) -> list[str]:
    overrides = []
    for override in OverridesParser.create().parse_overrides(args):
        if override.is_sweep_override():
            value = next(iter(override.sweep_string_iterator()))
            overrides.append(f"{override.get_key_element()}={value}")
        else:
            overrides.append(override.input_line)
    return overrides


COMMANDS = hydra_commands()


def test_the_docs_hold_hydra_commands():
    # the parser finds the README's training, evaluation and export examples
    assert {name for _, name, _ in COMMANDS} >= {"train", "eval", "export"}
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize(
    "doc, config, args", COMMANDS, ids=[f"{d}:{c}:{' '.join(a)[:60]}" for d, c, a in COMMANDS]
)
def test_documented_command_composes(doc, config, args, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # a relative hydra.searchpath (file://examples/plugin/conf)
    compose_config(config, first_of_each_sweep(args))
