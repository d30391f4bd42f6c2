"""The sample teacher that ships inside the package (the main job's teacher)."""

import pytest

from srdistill.models.pretrained import sample_teacher, sample_teacher_path


def test_sample_teacher_ships_in_the_package_and_loads():
    assert sample_teacher_path().is_file()
    model = sample_teacher(4)
    assert model.scale == 4 and sum(p.numel() for p in model.parameters()) > 300_000
    with pytest.raises(ValueError, match="x4 only"):
        sample_teacher(2)
