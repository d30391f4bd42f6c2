"""User text (set names, tags, run folders, group names) made inert in the report's formats.

Anything a results.json or an option holds is data: in report.tex it must never become a TeX
command (``\\input{...}``, ``\\write18{...}``) or end a row (``\\\\``, ``&``), and in the Markdown
tables it must never add a column (``|``) or end a row (a newline).
"""

from __future__ import annotations

_LATEX = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    "|": r"\textbar{}",  # these three print as other glyphs in TeX's default font encoding
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "\n": " ",  # a blank line is a paragraph break, an error inside a table cell
    "\r": " ",
}

_MARKDOWN = {"\\": "\\\\", "|": "\\|", "\n": " ", "\r": " "}


def latex_text(text: object) -> str:
    r"""``text`` as it reads, in one pass (so no replacement is escaped twice).

    >>> latex_text("\\input{x}_1 & 50%")
    '\\textbackslash{}input\\{x\\}\\_1 \\& 50\\%'
    """
    return "".join(_LATEX.get(char, char) for char in str(text))


def markdown_cell(text: object) -> str:
    r"""``text`` as one cell of a Markdown (GFM) table row.

    >>> markdown_cell("a|b\nc")
    'a\\|b c'
    """
    return "".join(_MARKDOWN.get(char, char) for char in str(text))


def markdown_row(cells) -> str:
    """One table row; every cell escaped, so no value can add a column or end the row."""
    escaped = [markdown_cell(cell) for cell in cells]
    return "|" + "".join(f" {cell} |" if cell else " |" for cell in escaped)


def markdown_rule(columns: int) -> str:
    return "|" + "---|" * columns
