"""srdistill-report's paper mode on a synthetic sweep: 2 methods x 2 seeds at x4 beside Tab. 3."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from srdistill.report.cli import main

# (method, seed) -> (Set5 PSNR, Urban100 PSNR); SSIM fixed per method
PSNR = {
    ("scratch", 0): (32.0, 26.0),
    ("scratch", 1): (32.2, 26.4),
    ("fitnet", 0): (31.5, 25.3),
    ("fitnet", 1): (31.7, 25.5),
}
SSIM = {"scratch": 0.9, "fitnet": 0.8}


def _write_run(folder, method, seed, set5, urban, tags=True):
    folder.mkdir(parents=True)
    val = {"val/Set5/psnr_y": set5, "val/Set5/ssim_y": SSIM[method]}
    val |= {"val/Urban100/psnr_y": urban, "val/Urban100/ssim_y": SSIM[method]}
    result = {"val": val, "steps": 4}
    if tags:
        result["tags"] = {"table": "mcad_tab3", "backbone": "edsr", "method": method}
        result["tags"] |= {"scale": 4, "seed": seed}
    else:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text(
            f"- loss={method}\n- scale=4\n- seed={seed}\n"
        )
    (folder / "results.json").write_text(json.dumps(result))


@pytest.fixture
def sweep(tmp_path):
    # fitnet's folders sort first: the report must still follow the paper's order
    for (method, seed), (set5, urban) in PSNR.items():
        _write_run(tmp_path / "sweep" / f"{method}_{seed}", method, seed, set5, urban)
    return tmp_path / "sweep"


def _markdown_rows(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return [dict(zip(head, row, strict=True)) for row in cells]


def test_markdown_rows_follow_the_paper_with_its_numbers_and_the_difference(sweep, tmp_path):
    out = tmp_path / "report"
    main([str(sweep), "--out", str(out)])
    rows = _markdown_rows((out / "report.md").read_text())
    assert [row["method"] for row in rows] == ["Scratch", "FitNet"]
    assert [row["n"] for row in rows] == ["2", "2"]
    scratch, fitnet = rows
    # Set5: mean(32.0, 32.2) = 32.10, sample std 0.14; the paper's EDSR x4 scratch 32.29
    assert scratch["Set5 PSNR"] == "32.10 ± 0.14"
    assert scratch["Set5 PSNR paper"] == "32.29"
    assert scratch["Set5 PSNR diff"] == "-0.19"
    # Urban100: mean(25.3, 25.5) = 25.40 against FitNet's 25.40: no difference
    assert fitnet["Urban100 PSNR paper"] == "25.40"
    assert fitnet["Urban100 PSNR diff"] == "+0.00"
    assert fitnet["Set5 SSIM"] == "0.8000 ± 0.0000"
    assert fitnet["Set5 SSIM paper"] == "0.8873"
    assert fitnet["Set5 SSIM diff"] == "-0.0873"


def test_csv_holds_the_same_numbers_at_full_precision(sweep, tmp_path):
    out = tmp_path / "report"
    main([str(sweep), "--out", str(out)])
    with (out / "report.csv").open() as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == 2 * 2 * 2  # methods x benchmarks x metrics
    for r in records:
        assert r["n"] == "2" and r["scale"] == "4"
        assert float(r["diff"]) == pytest.approx(float(r["mean"]) - float(r["paper"]))
    key = ("scratch", "Set5", "psnr")
    (scratch_set5,) = [r for r in records if (r["method"], r["benchmark"], r["metric"]) == key]
    assert float(scratch_set5["mean"]) == pytest.approx(32.1)
    assert float(scratch_set5["std"]) == pytest.approx(0.1414, abs=1e-4)
    assert float(scratch_set5["paper"]) == 32.29


def test_latex_has_a_tabular_with_a_row_per_method(sweep, tmp_path):
    out = tmp_path / "report"
    main([str(sweep), "--out", str(out)])
    tex = (out / "report.tex").read_text()
    assert tex.count("\\begin{tabular}") == 1 and tex.count("\\end{tabular}") == 1
    body = tex.split("\\begin{tabular}")[1].split("\\end{tabular}")[0]
    rows = [line for line in body.splitlines() if line.endswith("\\\\")]
    assert len(rows) == 1 + 2  # the header and the two methods
    assert rows[1].startswith("Scratch & 2 & $32.10 \\pm 0.14$ & 32.29 & $-0.19$")


def test_paper_mode_writes_both_tradeoff_figures_as_pngs(sweep, tmp_path):
    out = tmp_path / "report"
    main([str(sweep), "--out", str(out)])
    for name in ("tradeoff.png", "tradeoff_flops.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_a_figure_without_any_count_is_skipped_with_one_line(tmp_path, capsys):
    # dsclora_tab1 gives RFDN's parameters but no FLOPs; the runs record neither
    _write_run(tmp_path / "s" / "rfdn_0", "scratch", 0, 32.0, 26.0)
    path = tmp_path / "s" / "rfdn_0" / "results.json"
    result = json.loads(path.read_text())
    result["val"] = {"val/Urban100/psnr_y": 26.0, "val/Urban100/ssim_y": 0.78}
    result["tags"] |= {"table": "dsclora_tab1", "method": "rfdn"}
    path.write_text(json.dumps(result))
    out = tmp_path / "report"
    main([str(tmp_path / "s"), "--out", str(out)])
    assert (out / "tradeoff.png").is_file() and not (out / "tradeoff_flops.png").exists()
    expected = "no tradeoff_flops.png: neither the runs nor the paper give FLOPs"
    assert expected in capsys.readouterr().out


def test_runs_without_tags_are_told_apart_by_their_overrides(tmp_path, capsys):
    for (method, seed), (set5, urban) in PSNR.items():
        _write_run(tmp_path / "s" / f"{method}_{seed}", method, seed, set5, urban, tags=False)
    main([str(tmp_path / "s"), "--paper", "mcad_tab3"])
    rows = _markdown_rows(capsys.readouterr().out)
    assert [(row["method"], row["n"]) for row in rows] == [("Scratch", "2"), ("FitNet", "2")]


def _error_line(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_a_folder_without_results_is_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert str(tmp_path / "empty") in _error_line(capsys, [str(tmp_path / "empty")])


def test_an_unknown_paper_table_is_one_line_error_naming_the_known_ones(sweep, tmp_path, capsys):
    line = _error_line(capsys, [str(sweep), "--paper", "mcad_tab99", "--out", str(tmp_path / "o")])
    assert "--paper mcad_tab99" in line and "mcad_tab3" in line
    assert not (tmp_path / "o").exists()


def test_untagged_runs_need_paper(tmp_path, capsys):
    _write_run(tmp_path / "s" / "a", "scratch", 0, 32.0, 26.0, tags=False)
    assert "--paper" in _error_line(capsys, [str(tmp_path / "s"), "--out", str(tmp_path / "o")])


def test_python_dash_m_runs_the_same_command(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "srdistill.report", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    expected = f"error: {tmp_path / 'nothing'}: no results.json below it; "
    expected += "give the folder of a sweep"
    assert proc.stderr.strip() == expected


def _tradeoff_inputs(sweep):
    from srdistill.report.collect import load_runs
    from srdistill.report.paper import paper_table
    from srdistill.report.tables import paper_records

    table = paper_table("mcad_tab3")
    return paper_records(load_runs([sweep]), table), table


def test_tradeoff_places_ours_at_our_count_and_never_at_the_papers(sweep):
    from srdistill.report.figure import tradeoff_points

    records, table = _tradeoff_inputs(sweep)
    without_counts = tradeoff_points(records, table, {})
    assert {p.source for p in without_counts} == {"paper"}
    assert all(p.x == table["student"]["params"] for p in without_counts)
    with_counts = tradeoff_points(records, table, {(4, "scratch"): 1234})
    ours = [p for p in with_counts if p.source == "ours"]
    assert [(p.label, p.x, p.psnr) for p in ours] == [("Scratch", 1234.0, 26.2)]


def test_tradeoff_against_flops_takes_the_runs_and_the_papers_flops(sweep):
    from srdistill.report.figure import FLOPS, PARAMS, tradeoff_points

    records, table = _tradeoff_inputs(sweep)
    runs = {(4, "scratch"): 1.5, (4, "fitnet"): None}  # fitnet's count failed: no point
    points = tradeoff_points(records, table, runs, FLOPS)
    # Urban100 (the last benchmark): ours at the runs' mean PSNR, the paper's at Tab. 3's,
    # both at MCAD-KD Tab. 2's x4 EDSR student, 207.28 G multiply-accumulates
    assert sorted((p.source, p.label, p.x, p.psnr) for p in points) == [
        ("ours", "Scratch", 1.5, 26.2),
        ("paper", "FitNet", 207.28, 25.4),
        ("paper", "Scratch", 207.28, 26.21),
    ]
    # the same records against parameters: the paper's points move to the student's count
    by_params = tradeoff_points(records, table, {}, PARAMS)
    assert {p.x for p in by_params} == {2_700_000.0}


def test_a_paper_row_without_published_flops_is_left_out():
    from srdistill.report.figure import FLOPS, PARAMS, tradeoff_points
    from srdistill.report.paper import paper_table
    from srdistill.report.tables import Record

    table = paper_table("dsclora_tab1")  # RFDN: 550 K parameters, FLOPs not published
    row = {"method": "rfdn", "label": "RFDN", "scale": 4, "benchmark": "Urban100"}
    record = Record(**row, metric="psnr", mean=26.0, std=0.0, n=1, paper=26.11)
    assert tradeoff_points([record], table, {}, FLOPS) == []
    assert [p.x for p in tradeoff_points([record], table, {}, PARAMS)] == [550_000.0]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{broken", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"val": 5}', "'val' must map"),
        ('{"val": {"val/Set5/psnr_y": "high"}}', "'val' must map"),
        ('{"val": {}, "tags": {"scale": "x4"}}', "tags.scale"),
        ('{"val": {}, "flops_g": "8.5G"}', "'flops_g' must be a number or null"),
        ('{"val": {}, "params": [1]}', "'params' must be a number or null"),
    ],
)
def test_a_broken_or_crafted_results_file_is_one_line_naming_it(tmp_path, capsys, content, needle):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(content)
    line = _error_line(capsys, [str(tmp_path)])
    assert needle in line and "results.json" in line


@pytest.mark.parametrize("digits", ["-5", "99", "two"])
def test_an_absurd_digits_option_is_one_line(sweep, capsys, digits):
    assert "--digits" in _error_line(capsys, [str(sweep), "--digits", digits])


def test_a_tag_without_published_numbers_asks_for_paper(sweep, tmp_path, capsys):
    for path in sweep.rglob("results.json"):
        result = json.loads(path.read_text())
        result["tags"]["table"] = "my_mini_table"
        path.write_text(json.dumps(result))
    line = _error_line(capsys, [str(sweep), "--out", str(tmp_path / "o")])
    assert "my_mini_table" in line and "--paper" in line
    assert not (tmp_path / "o").exists()  # nothing written


def test_the_table_student_counts_only_at_the_scale_it_was_counted_for():
    from srdistill.report.paper import paper_cost, paper_row, paper_table

    table = paper_table("mcad_tab3")
    # MCAD-KD Tab. 2: the x4 EDSR student, 207.28 G; the x2 student is another network
    assert paper_cost(table, paper_row(table, "kd", 4), "flops_g") == 207.28
    assert paper_cost(table, paper_row(table, "kd", 4), "params") == 2_700_000
    assert paper_cost(table, paper_row(table, "kd", 2), "flops_g") is None
