"""scripts/compare_weights.py and srdistill.lora.spectrum: the rank of a merged ConvLoRA update is
where the change's spectrum drops the most, and the table names the configured r*k beside it."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from srdistill.lora.spectrum import largest_gap, update_rank
from tests.helpers.cli import assert_one_line_error, run_script
from tests.helpers.shared import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    "compare_weights", REPO_ROOT / "scripts" / "compare_weights.py"
)
compare_weights = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_weights)

LORA = REPO_ROOT / "conf" / "lora"


def low_rank_change(c_out: int, c_in: int, rank_k: int, noise: float = 1e-7) -> torch.Tensor:
    """reshape(B @ A) to a (c_out, c_in, 3, 3) kernel, B @ A of rank ``rank_k``, plus noise."""
    g = torch.Generator().manual_seed(0)
    b = torch.randn(c_out * 3, rank_k, generator=g, dtype=torch.float64)
    a = torch.randn(rank_k, c_in * 3, generator=g, dtype=torch.float64)
    noise = noise * torch.randn(c_out * 3, c_in * 3, generator=g, dtype=torch.float64)
    return (b @ a / rank_k + noise).reshape(c_out, c_in, 3, 3)


@pytest.mark.parametrize("c_out", [26, 48])
def test_a_rank_12_update_with_float_noise_is_found_at_12(c_out):
    gap = update_rank(low_rank_change(c_out, 26, 12))
    assert (gap.rank, gap.possible) == (12, 78)
    assert gap.ratio > 1e4  # unit-scale signal over 1e-7 noise


def test_an_exact_low_rank_spectrum_ends_at_an_infinite_gap():
    gap = largest_gap(torch.tensor([4.0, 2.0, 1.0, 0.0, 0.0]))
    assert (gap.rank, gap.ratio) == (3, float("inf"))
    assert largest_gap(torch.zeros(3)) is None


def test_the_largest_ratio_wins_not_the_largest_difference():
    # drops: 10 -> 5 (x2), 5 -> 1 (x5), 1 -> 0.5 (x2)
    assert largest_gap(torch.tensor([10.0, 5.0, 1.0, 0.5])).rank == 2


def test_a_square_spectrum_ignores_its_last_hard_edge_ratio():
    singular = torch.tensor([8.0, 7.0, 1.0, 0.9, 0.01])  # x7 at 2, x90 at 4 (the hard edge)
    assert largest_gap(singular).rank == 4
    assert largest_gap(singular, square=True).rank == 2


def test_lora_targets_follow_defaults_to_the_main_config():
    main = compare_weights.lora_targets(LORA / "lora.yaml")
    assert compare_weights.lora_targets(LORA / "lora_fa.yaml") == main
    tail = compare_weights.lora_targets(LORA / "lora_tail.yaml")
    assert {t["pattern"] for t in tail} == {r"upsampler\.0", r"conv_2\.eval_conv"}


def test_the_table_shows_the_gap_rank_beside_the_configured_one(tmp_path):
    torch.manual_seed(0)
    before = {
        "block_1.c1_r.eval_conv.weight": torch.randn(26, 26, 3, 3),
        "block_1.c1_r.eval_conv.bias": torch.randn(26),
        "conv_cat.weight": torch.randn(26, 104, 1, 1),
    }
    after = dict(before)
    key = "block_1.c1_r.eval_conv.weight"
    after[key] = (before[key].double() + 0.01 * low_rank_change(26, 26, 24)).float()
    torch.save(before, tmp_path / "before.pth")
    torch.save(after, tmp_path / "after.pth")
    proc = run_script(
        "scripts/compare_weights.py",
        str(tmp_path / "before.pth"),
        str(tmp_path / "after.pth"),
        "--lora",
        str(LORA / "lora.yaml"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| block_1")]
    assert len(rows) == 1  # the bias and conv_cat did not change
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[0] == key and cells[2] == "24 of 78" and cells[4] == "24 (r 8)"
    assert float(cells[3]) > 100  # 1e-2 signal over float32 round-off (~1e-7)
    assert "tolerance" not in proc.stdout and "changed (>" not in proc.stdout


def test_a_missing_lora_config_is_one_line(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "a.pth")
    missing = tmp_path / "nope.yaml"
    proc = run_script(
        "scripts/compare_weights.py",
        str(tmp_path / "a.pth"),
        str(tmp_path / "a.pth"),
        "--lora",
        str(missing),
    )
    assert_one_line_error(proc, "--lora", "nope.yaml")
