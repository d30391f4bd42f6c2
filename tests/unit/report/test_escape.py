"""Set names, tags and group names are data: in report.tex none becomes a TeX command or ends a
row, and in the Markdown tables none adds a column or ends a row."""

from __future__ import annotations

import csv
import re

import pytest

from srdistill.outputs import write_json
from srdistill.report.escape import latex_text, markdown_cell
from tests.helpers.cli import run_script

HOSTILE = [
    "\\immediate\\write18{rm -rf}",
    "\\input{/etc/passwd}",
    "a|b",
    "line\nbreak",
    "back\\slash",
]
HOSTILE += ["50% & $x^2_1$ #~ <>"]
# what report.tex itself writes; a control word from the data would be anything else
OWN_WORDS = {"begin", "end", "hline", "pm", "Delta"}
ESCAPES = {"textbackslash", "textasciicircum", "textasciitilde", "textbar", "textless"}
ESCAPES |= {"textgreater"}


def _sweep(root):
    """One run per hostile method name, each scored on a set per hostile name."""
    val = {}
    for name in HOSTILE:
        val |= {f"val/{name}/psnr_y": 30.0, f"val/{name}/ssim_y": 0.9}
    for i, method in enumerate(HOSTILE):
        tags = {"table": "mcad_tab3", "method": method, "scale": 4, "seed": 0}
        write_json(root / f"r{i}" / "results.json", {"val": val, "steps": 1, "tags": tags})
    return root


def _tex_tokens(tex: str) -> list[str]:
    """TeX's tokens that matter here: control sequences, alignment tabs; comments dropped."""
    tex = re.sub(r"(?<!\\)%.*", "", tex)
    return re.findall(r"\\[A-Za-z]+|\\.|&", tex, flags=re.DOTALL)


def _gfm_cells(line: str) -> list[str]:
    """A GFM table row split as a renderer splits it (``\\x`` is one escaped character)."""
    cells, cell, chars = [], "", iter(line.strip()[1:-1])
    for char in chars:
        if char == "\\":
            cell += next(chars, "")  # the escaped character itself, unescaped
        elif char == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += char
    return [*cells, cell.strip()]


def test_report_tex_holds_no_command_and_no_row_end_from_the_data(tmp_path):
    proc = run_script("-m", "srdistill.report", _sweep(tmp_path / "s"), "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    tokens = _tex_tokens((tmp_path / "o" / "report.tex").read_text())
    words = {t[1:] for t in tokens if re.fullmatch(r"\\[A-Za-z]+", t)}
    assert words <= OWN_WORDS | ESCAPES, words - OWN_WORDS - ESCAPES
    assert not {"write", "input", "immediate"} & words
    rows = " ".join(tokens).split("\\\\")[:-1]  # up to each row end
    assert len(rows) == 1 + len(HOSTILE)  # the header and one per method: no extra row ends
    columns = 2 + 3 * 2 * len(HOSTILE)  # method, n; ours, paper, diff per set and metric
    assert all(row.split().count("&") == columns - 1 for row in rows)


def test_every_markdown_row_keeps_its_columns_and_reads_back_as_the_data(tmp_path):
    proc = run_script("-m", "srdistill.report", _sweep(tmp_path / "s"), "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "o" / "report.md").read_text().splitlines()
    rows = [_gfm_cells(line) for line in lines if line.startswith("|")]
    assert len(rows) == 2 + len(HOSTILE) and {len(row) for row in rows} == {len(rows[0])}
    labels = {row[0] for row in rows[2:]}
    assert labels == {name.replace("\n", " ") for name in HOSTILE}
    assert "\\immediate\\write18{rm -rf} PSNR" in rows[0]


def test_summary_rows_keep_their_columns_with_hostile_group_names(tmp_path):
    proc = run_script("-m", "srdistill.report", _sweep(tmp_path / "s"), "--group", "method")
    assert proc.returncode == 0, proc.stderr
    rows = [_gfm_cells(line) for line in proc.stdout.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(HOSTILE) and {len(row) for row in rows} == {3 + len(HOSTILE)}
    assert {row[0] for row in rows[2:]} == {name.replace("\n", " ") for name in HOSTILE}


@pytest.mark.parametrize(
    ("text", "tex"),
    [
        ("back\\slash", "back\\textbackslash{}slash"),
        ("{x}", "\\{x\\}"),
        ("$a^b_c$", "\\$a\\textasciicircum{}b\\_c\\$"),
        ("50% & #1 ~", "50\\% \\& \\#1 \\textasciitilde{}"),
        ("line\nbreak", "line break"),
    ],
)
def test_latex_text_escapes_each_special_character_once(text, tex):
    assert latex_text(text) == tex


def test_markdown_cell_escapes_pipes_backslashes_and_newlines():
    assert markdown_cell("a|b\\|c\nd") == "a\\|b\\\\\\|c d"


FORMULAS = ["=cmd|' /C calc'!A0", "+1+cmd|calc", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_report_csv_starts_user_text_a_spreadsheet_would_run_with_a_quote(tmp_path):
    root = tmp_path / "s"
    for i, name in enumerate(FORMULAS):
        val = {f"val/{name}/psnr_y": 30.0 + i, f"val/{name}/ssim_y": 0.9}
        tags = {"table": "mcad_tab3", "method": name, "scale": 4, "seed": 0}
        write_json(root / f"r{i}" / "results.json", {"val": val, "steps": 1, "tags": tags})
    # a method the paper has: its paper number makes the difference negative, a number
    val = {"val/Set5/psnr_y": 20.0, "val/Set5/ssim_y": 0.5}
    tags = {"table": "mcad_tab3", "method": "scratch", "scale": 4, "seed": 0}
    write_json(root / "paper" / "results.json", {"val": val, "steps": 1, "tags": tags})
    proc = run_script("-m", "srdistill.report", root, "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "o" / "report.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    text_cells = [row[key] for row in rows for key in ("method", "label", "benchmark")]
    assert {f"'{name}" for name in FORMULAS} <= set(text_cells)
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in text_cells)
    diffs = [float(row["diff"]) for row in rows if row["diff"]]
    assert diffs and all(d < 0 for d in diffs)  # the report's own numbers stay numbers
    assert any(row["diff"].startswith("-") for row in rows)
