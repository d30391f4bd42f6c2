"""Feature-KD through the real CLI: a batch too small for RKD is one line (every loss config's
2-step smoke run: tests/integration/test_every_loss_cli.py)."""

from tests.helpers.cli import assert_one_line_error, run_script


def test_rkd_with_two_images_per_batch_is_one_line(tmp_path):
    args = ("experiment=smoke", "loss=rkd", "batch_size=2", f"hydra.run.dir={tmp_path}")
    proc = run_script("train.py", *args)
    assert_one_line_error(proc, "batch_size=2", "at least 3")
