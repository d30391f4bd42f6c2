"""Summarise the results.json files of one or more sweeps, or set them beside a paper's table.

srdistill-report multirun/2026-11-23_02-30-00 [--group loss]
    [--deployed] [--digits 4] [--baseline span_tiny.json] [--versus GROUP]
srdistill-report outputs/mcad_tab3 [more sweeps] --out report/ [--paper mcad_tab3]

Summary mode prints a markdown table: mean +- std over seeds per group.
--group names an override (or a tag of results.json) that tells the runs apart (loss, seed, ...),
or ``folder``: the folder that holds each run folder (OUT/<arm>/seed0/results.json -> <arm>);
--versus GROUP adds each group's difference to GROUP, paired by seed (same seed, same data order);
--eval-json NAME reads each run's metrics from the eval.py ``out=`` file NAME in its folder (e.g.
the exported network's score), and a control's from <run>/without_teacher/NAME as the group
"<group> without teacher" (pair them with --versus);
--grad-share TERM summarises the runs' gradient shares (module.grad_share_every) of TERM instead:
its gradient norm relative to the rec term's and the cosine with it, first / mean / last;
--deployed reads the deployed student of the final table (adapters merged, averaged) instead of
the last validation; --baseline adds the gain of each group's mean over an eval.py ``out=`` JSON;
--final-table summarises the rows of the runs' final tables (bicubic, teacher, the student
without teacher, the distilled student) and the gain of distillation, seed by seed.

Paper mode (--paper or --out): per scale, a row per method in the paper's order; for each
benchmark our mean +- std over seeds, n, the paper's number and ours - paper. Runs are told apart
by the ``tags`` of results.json (table, method, scale, seed), else by their ``loss=``/``scale=``/
``seed=`` overrides. --out writes report.md, report.tex and report.csv there, and the trade-off
figures: PSNR on the last benchmark against parameters (tradeoff.png) and against FLOPs
(tradeoff_flops.png; the papers' convention: G multiply-accumulates at an LR input of 3x256x256),
our runs at the counts their results.json records (params, flops_g), the paper's at its own.
The files are all rendered first, then each replaced atomically: a full disk leaves no file cut
short, and a figure this report cannot draw is removed rather than left from an earlier one.

A cell is blank where one of its runs holds no finite number (null in results.json: a diverged
metric) or was not scored on that benchmark; a line below the table names those runs. A
results.json train.py cannot have written (not UTF-8, not strict JSON, wrong types) stops the
report in one line naming it. Run folders behind symbolic links are read; a folder reached a
second time, also through another of the folders given, is skipped with a warning. Every input
is read only if it is a regular file of at most 16 MiB (a FIFO or a device such as /dev/zero is
refused in one line). Set names, tags and run names are escaped in every file; in report.csv,
one that a spreadsheet would run as a formula (= + - @ first) starts with a ' instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srdistill.cli.arguments import OneLineErrorParser
from srdistill.outputs import OutputError, ensure_writable_dir, write_atomic
from srdistill.report.cells import Blanks
from srdistill.report.collect import (
    ReportError,
    Run,
    deployed_metrics,
    eval_json_runs,
    identity,
    load_runs,
    read_scores,
)
from srdistill.report.figure import QUANTITIES, tradeoff_figures
from srdistill.report.paper import paper_numbers, paper_table
from srdistill.report.summary import final_table_summary, grad_share_summary, summarize
from srdistill.report.tables import csv_text, latex, markdown, paper_records
from srdistill.report.weights import by_method, weights_section


def _digits(text: str) -> int:
    if not text.isdigit() or int(text) > 8:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of decimals, 0 to 8")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser(
        prog="srdistill-report",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument("roots", type=Path, nargs="+", metavar="SWEEP")
    parser.add_argument("--group", default="loss")
    parser.add_argument("--deployed", action="store_true")
    parser.add_argument("--digits", type=_digits, default=None, help="PSNR decimals (3; paper: 2)")
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--final-table", action="store_true")
    parser.add_argument("--versus", default=None, help="a group to subtract, paired by seed")
    parser.add_argument("--grad-share", default=None, metavar="TERM")
    parser.add_argument("--eval-json", default=None, metavar="NAME")
    parser.add_argument("--paper", default=None, metavar="TABLE", help="e.g. mcad_tab3")
    parser.add_argument("--out", type=Path, default=None, help="folder for the paper-mode files")
    return parser.parse_args(argv)


def chosen_table(runs: list[Run], paper: str | None) -> str:
    """--paper, else the one table the runs' tags name."""
    if paper:
        return paper
    tagged = sorted({t for t in (identity(*run)["table"] for run in runs) if t})
    if len(tagged) == 1 and tagged[0] in paper_numbers()["tables"]:
        return tagged[0]
    found = f"their tags name {', '.join(tagged)}" if tagged else "they carry no table tag"
    if len(tagged) == 1:
        found += ", which has no published numbers"
    raise ReportError(f"which paper table? {found}; choose one with --paper (e.g. mcad_tab3)")


def paper_files(records, name: str, table: dict, digits: int, runs: list[Run], blanks) -> dict:
    """Every file of --out by name, rendered in memory (text or PNG bytes)."""
    notes = blanks.footnotes()
    files = {
        "report.md": "\n".join(
            [
                markdown(records, name, table, digits, notes),
                *weights_section(by_method(runs), "method"),
            ]
        )
        + "\n",
        "report.tex": latex(records, table, digits, notes),
        "report.csv": csv_text(records),
    }
    return files | tradeoff_figures(records, table, [identity(*run) for run in runs])


TEXT_FILES = ("report.md", "report.tex", "report.csv")


def refuse_folders_in_the_way(folder: Path) -> None:
    """Before anything is written: no file of the report (written, or removed as stale) may be
    a folder, or the report would stop half replaced."""
    for name in (*TEXT_FILES, *(q.file_name for q in QUANTITIES)):
        if (folder / name).is_dir():
            raise ReportError(
                f"--out: {folder / name} is a folder where the report writes a file; "
                "move it away or choose another --out"
            )


def write_files(folder: Path, files: dict) -> None:
    """Each file atomically (a full disk leaves the previous one whole); then a figure this
    report has no points for is removed, so that the folder holds one report, not two."""
    written = []
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        try:
            write_atomic(folder / name, lambda f, data=data: f.write(data), "--out")
        except OutputError as err:
            done = f"replaced {', '.join(written)}; " if written else ""
            raise OutputError(f"{err}; {done}left the other files as they were") from err
        written.append(name)
    for stale in {q.file_name for q in QUANTITIES} - set(files):
        if (folder / stale).exists():
            (folder / stale).unlink()
            print(f"removed {folder / stale}: it was drawn from an earlier report")


def paper_report(runs: list[Run], args: argparse.Namespace) -> str:
    name = chosen_table(runs, args.paper)
    table = paper_table(name)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ReportError(f"--out {args.out} is a file; give a folder")
    digits = 2 if args.digits is None else args.digits
    blanks = Blanks()
    records = paper_records(runs, table, blanks)
    if not records:
        raise ReportError("no benchmark is scored in any run (val/<Set>/psnr_y in results.json)")
    if args.out is None:
        text = markdown(records, name, table, digits, blanks.footnotes())
        return "\n".join([text, *weights_section(by_method(runs), "method")])
    ensure_writable_dir(args.out, "--out")
    refuse_folders_in_the_way(args.out)
    files = paper_files(records, name, table, digits, runs, blanks)
    write_files(args.out, files)
    return files["report.md"].rstrip("\n")


def report(args: argparse.Namespace) -> str:
    runs = load_runs(args.roots)
    if args.paper or args.out is not None:
        return paper_report(runs, args)
    digits = 3 if args.digits is None else args.digits
    if args.final_table:
        return final_table_summary(runs, digits)
    if args.grad_share:
        return grad_share_summary(runs, args.group, args.grad_share)
    if args.deployed:
        runs = [(overrides, deployed_metrics(result)) for overrides, result in runs]
    if args.eval_json:
        runs = eval_json_runs(runs, args.group, args.eval_json)
    baseline = None
    if args.baseline:
        baseline = (
            {"run_dir": str(args.baseline)},
            {"val": read_scores(args.baseline, "--baseline")},
        )
    return summarize(runs, args.group, digits, baseline, args.versus)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        text = report(args)
    except (ReportError, OSError) as err:  # OSError: an unreadable file or folder, named
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(text)


if __name__ == "__main__":
    main()
