import numpy as np
import pytest

from srdistill.counts import check_count, is_count


@pytest.mark.parametrize(
    ("value", "minimum", "expected"),
    [
        (1, 1, True),
        (0, 1, False),
        (0, 0, True),
        (-1, 0, False),
        (np.int64(3), 1, True),  # what a numpy-computed size is
        (True, 1, False),  # Python's 1, never a count here
        (2.0, 1, False),
        ("2", 1, False),
        (None, 1, False),
    ],
)
def test_is_count(value, minimum, expected):
    assert is_count(value, minimum) is expected


def test_check_count_returns_a_plain_int_and_names_the_option_when_refusing():
    value = check_count("images", np.int64(2))
    assert value == 2 and type(value) is int
    with pytest.raises(ValueError, match=r"^images=0: give an integer >= 1; or null$"):
        check_count("images", 0, hint="or null")
    with pytest.raises(ValueError, match=r"^margin=-3: give an integer >= 0$"):
        check_count("margin", -3, minimum=0)
