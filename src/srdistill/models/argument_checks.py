"""Checks for the plain values a model may be built from (a record, a file's metadata, a config).

Each check takes the field's name and a value and returns the value, or raises ``BuildRecordError``
naming the field, its allowed range and the value given (cut short): values read from a file
never reach a constructor unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


class BuildRecordError(ValueError):
    """A build record field that is not an allowed plain value; the message names the field."""


Check = Callable[[str, Any], Any]


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def integer(low: int, high: int) -> Check:
    def check(field: str, value: Any) -> int:
        if type(value) is not int or not low <= value <= high:
            raise BuildRecordError(
                f"{field} must be an integer in [{low}, {high}], got {value!r:.80}"
            )
        return value

    return check


def number(low: float, high: float, low_open: bool = False) -> Check:
    def check(field: str, value: Any) -> float:
        in_range = _is_number(value) and (value > low if low_open else value >= low)
        if not in_range or value > high:
            bracket = "(" if low_open else "["
            raise BuildRecordError(
                f"{field} must be a number in {bracket}{low}, {high}], got {value!r:.80}"
            )
        return float(value)

    return check


def flag(field: str, value: Any) -> bool:
    if type(value) is not bool:
        raise BuildRecordError(f"{field} must be true or false, got {value!r:.80}")
    return value


def one_of(*choices: Any) -> Check:
    def check(field: str, value: Any) -> Any:
        if type(value) not in (int, str) or value not in choices:
            raise BuildRecordError(f"{field} must be one of {list(choices)}, got {value!r:.80}")
        return value

    return check


def integers(low: int, high: int, max_len: int) -> Check:
    item = integer(low, high)

    def check(field: str, value: Any) -> list[int]:
        if type(value) not in (list, tuple) or not 1 <= len(value) <= max_len:
            raise BuildRecordError(f"{field} must be a list of 1 to {max_len} integers")
        return [item(f"{field}[{i}]", v) for i, v in enumerate(value)]

    return check


SCALE = one_of(2, 3, 4, 8)
SIZE = integer(1, 4096)
IN_CHANS = integer(1, 64)
IMG_RANGE = number(0.0, 65535.0, low_open=True)

# the arguments BasicSR-style CNNs (EDSR, RCAN) share
CNN_ARGS: dict[str, Check] = {
    "scale": SCALE,
    "num_feat": SIZE,
    "num_block": SIZE,
    "res_scale": number(0.0, 10.0),
    "img_range": IMG_RANGE,
    "in_chans": IN_CHANS,
}
