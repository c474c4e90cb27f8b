"""Strict parsing of numbers that arrive as text or JSON: from URLs, query strings, CLI arguments,
request bodies and headers.

The lowest layer (no workbench import), so every adapter and stage shares one definition.
``str.isdigit`` accepts ``'²'`` (then ``int()`` raises) and ``int()`` accepts 10,000 digits of
work; ``int(True)`` is 1 and ``int(2.9)`` is 2. These functions accept only ASCII decimal integers
of a bounded length (or a real ``int`` that is not a ``bool``) and raise ``ValueError`` with a
message that names the value, which callers turn into their own 400 or ``ConfigError``.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["MAX_DIGITS", "is_int_text", "parse_int", "parse_float"]

#: More digits than any id, count or port needs; ``int()`` of 4,300+ digits raises in 3.11.
MAX_DIGITS = 18
_INT = re.compile(rf"[+-]?[0-9]{{1,{MAX_DIGITS}}}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,3})?")


def is_int_text(text: Any) -> bool:
    """Whether ``text`` is a string of ASCII digits (optional sign) short enough to be an id.

    Examples
    --------
    >>> [is_int_text(t) for t in ("12", "-3", "²", "1.0", "", " 7", "9" * 19)]
    [True, True, False, False, False, False, False]
    """
    return isinstance(text, str) and _INT.fullmatch(text) is not None


def parse_int(value: Any, what: str = "value", *, minimum: int | None = None) -> int:
    """``value`` as an int: a real ``int`` (not ``bool``) or ASCII decimal text; else ``ValueError``.

    Examples
    --------
    >>> parse_int("42", "limit"), parse_int(7, "id")
    (42, 7)
    >>> parse_int(True, "limit")
    Traceback (most recent call last):
    ...
    ValueError: limit must be a whole number, not True
    >>> parse_int("2.9", "limit")
    Traceback (most recent call last):
    ...
    ValueError: limit must be a whole number, not '2.9'
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a whole number, not {value!r}")
    if isinstance(value, int):
        number = value
        if abs(number) >= 10**MAX_DIGITS:
            raise ValueError(f"{what} is out of range ({MAX_DIGITS} digits at most)")
    elif is_int_text(value):
        number = int(value)
    else:
        shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "…"
        raise ValueError(f"{what} must be a whole number, not {shown!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{what} must be at least {minimum}, not {number}")
    return number


def parse_float(value: Any, what: str = "value") -> float:
    """``value`` as a finite float: an ``int``/``float`` (not ``bool``) or ASCII decimal text.

    Examples
    --------
    >>> parse_float("0.25", "weight"), parse_float(1, "weight")
    (0.25, 1.0)
    >>> parse_float("nan", "weight")
    Traceback (most recent call last):
    ...
    ValueError: weight must be a finite number, not 'nan'
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        number = float(value)
    else:
        shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "…"
        raise ValueError(f"{what} must be a finite number, not {shown!r}")
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return number
