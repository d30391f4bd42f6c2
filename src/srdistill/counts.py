"""Whole-number options (step counts, sizes, intervals): one test and one wording for all."""

from __future__ import annotations

import numbers


def is_count(value, minimum: int = 1) -> bool:
    """An integer of at least ``minimum``; a bool is not one, though Python counts True as 1."""
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return integer and bool(value >= minimum)


def check_count(option: str, value, minimum: int = 1, hint: str = "") -> int:
    """``value`` as an int if it is a count, else a one-line error in the form the user typed
    it, ``option=value`` (``hint``: what else may be given, after a semicolon)."""
    if not is_count(value, minimum):
        advice = f"; {hint}" if hint else ""
        raise ValueError(f"{option}={value!r}: give an integer >= {minimum}{advice}")
    return int(value)
