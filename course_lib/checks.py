"""Argument checks, one signature for all: ``check_x(name, value, ...)`` returns ``value`` or raises an error that
names ``name``, what it must be and the value given.

    >>> check_int("steps", 2000)
    2000
    >>> check_int("steps", 0)
    Traceback (most recent call last):
    ...
    course_lib.checks.InvalidValue: steps must be a positive integer, got 0

``TrainConfig``'s field table uses these functions as its rows, and the command line wraps each of them once as an
argparse ``type`` (``cli.argtype``), which says ``expected <InvalidValue.expected>, got '<text>'``. The lowest
module of the library: it imports only the standard library (and NumPy, for its integer types, when asked), so the
command line can import it before torch.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

__all__ = ["InvalidValue", "SEED_MAX", "is_int", "is_number", "check_int", "check_seed", "check_bool",
           "check_positive_number", "check_nonneg_number", "check_unit_interval", "check_choice"]

SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer


class InvalidValue(ValueError):
    """``name`` must be ``expected`` (a phrase such as "a positive integer"), and ``value`` is not."""

    def __init__(self, name: str, expected: str, value: Any):
        super().__init__(f"{name} must be {expected}, got {value!r}")
        self.name = name
        self.expected = expected
        self.value = value


def is_int(v: Any) -> bool:
    """True for a Python or NumPy integer, False for everything else (``True`` and ``False`` included)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        return False
    return isinstance(v, np.integer)


def is_number(v: Any) -> bool:
    """True for an int or a float (NaN and inf included), False for a bool and everything else."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None, allow_none: bool = False) -> Any:
    """Return ``value`` if it is an integer in ``[minimum, maximum]`` (or None when ``allow_none``).

    Raises:
        InvalidValue: naming ``name``, what was expected ("a positive integer" for ``minimum=1``) and the value.
    """
    if value is None and allow_none:
        return value
    if is_int(value) and value >= minimum and (maximum is None or value <= maximum):
        return value
    kind = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer >= {minimum}")
    if maximum is not None:
        kind = f"an integer in [{minimum}, {maximum}]"
    raise InvalidValue(name, kind + (" or None" if allow_none else ""), value)


def check_seed(name: str, value: Any) -> int:
    """Return ``value`` as an int if it is a valid seed, an integer in [0, 2**63 - 1]; else raise InvalidValue."""
    if is_int(value) and 0 <= value <= SEED_MAX:
        return int(value)
    raise InvalidValue(name, "an integer in [0, 2**63 - 1] (a 64-bit seed)", value)


def check_bool(name: str, value: Any, allow_none: bool = False) -> Any:
    """Return ``value`` if it is a real bool (or None when ``allow_none``); strings such as ``'no'`` are refused.

    Raises:
        TypeError: naming ``name`` and the value (``'no'`` is a non-empty string, so it would count as True).
    """
    if isinstance(value, bool) or (value is None and allow_none):
        return value
    raise TypeError(f"{name} must be True or False{' (or None)' if allow_none else ''}, got {value!r} "
                    f"({type(value).__name__})")


def check_positive_number(name: str, value: Any) -> Any:
    """Return ``value`` if it is a positive finite int or float (not a bool), else raise InvalidValue."""
    if is_number(value) and math.isfinite(value) and value > 0:
        return value
    raise InvalidValue(name, "a positive finite number", value)


def check_nonneg_number(name: str, value: Any, allow_none: bool = False) -> Any:
    """Return ``value`` if it is a finite int or float >= 0 (or None when ``allow_none``), else raise
    InvalidValue."""
    if (value is None and allow_none) or (is_number(value) and math.isfinite(value) and value >= 0):
        return value
    raise InvalidValue(name, "a non-negative number", value)


def check_unit_interval(name: str, value: Any) -> Any:
    """Return ``value`` if it is a number in [0, 1) (a probability-like weight that must stay below 1)."""
    if is_number(value) and 0 <= value < 1:
        return value
    raise InvalidValue(name, "a number in [0, 1)", value)


def check_choice(name: str, value: Any, choices: Sequence[str], noun: str | None = None,
                 valid: str = "choices") -> Any:
    """Return ``value`` if it is one of ``choices``; else raise ValueError "unknown <noun> <value>; valid <valid>
    are <choices>" (``noun`` defaults to ``name``: "unknown split 'val'; valid choices are train, test, all")."""
    if isinstance(value, str) and value in choices:
        return value
    raise ValueError(f"unknown {noun or name} {value!r}; valid {valid} are {', '.join(choices)}")
