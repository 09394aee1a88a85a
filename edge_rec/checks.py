"""Value checks shared by the manifest loader and the public constructors."""
from __future__ import annotations


def is_count(v) -> bool:
    """An int >= 0 (bool excluded)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_number(v) -> bool:
    """An int or a float (bool excluded)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_probability(v) -> bool:
    return is_number(v) and 0.0 <= v <= 1.0


def positive_int(name: str, value) -> int:
    if not (is_count(value) and value > 0):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def probability(name: str, value) -> float:
    if not is_probability(value):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)
