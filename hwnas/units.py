"""Amounts as people type and read them: ``330M``, ``1.5G``, ``6.5e9`` (MACs, params, BitOps budgets)."""

from __future__ import annotations

import math
import re

from hwnas.errors import HwnasError

#: decimal suffixes, case-insensitive on input (``k`` = ``K`` = 1e3).
SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_AMOUNT = re.compile(r"\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)\s*")


def parse_amount(text: str, option: str, *, allow_zero: bool = False) -> float:
    """``"330M"`` -> 3.3e8: a number with an optional K / M / G / T suffix, or in e-notation.

    ``option`` names the setting in errors (``--max-macs``); amounts must be > 0 (>= 0 with
    ``allow_zero``).
    """
    m = _AMOUNT.fullmatch(str(text))
    if not m:
        if str(text).strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise HwnasError(f"{option} must be a finite number, got {str(text)!r}")
        raise HwnasError(f"{option} {str(text)!r} is not a number; use e.g. 330M, 1.5G or 2e8")
    value = float(m.group(1)) * SUFFIXES[m.group(2).lower()]
    if not math.isfinite(value):
        raise HwnasError(f"{option} {str(text)!r} is too large; use e.g. 330M, 1.5G or 2e8")
    if value < 0 or (value == 0 and not allow_zero):
        raise HwnasError(f"{option} must be {'>= 0' if allow_zero else '> 0'}, got {text}")
    return value


def parse_optional_amount(text: str | None, option: str) -> float | None:
    """:func:`parse_amount`, passing ``None`` (an option not given) through."""
    return None if text is None else parse_amount(text, option)


def format_amount(value: float | None, unit: str = "", digits: int = 4) -> str:
    """``330.2M MACs``, ``12.5 ms``, ``-``: the short form of an amount (``digits`` significant)."""
    if value is None:
        return "-"
    v = float(value)
    if not math.isfinite(v):
        return f"{v} {unit}".strip()
    text = f"{v:.{digits}g}"
    for suffix, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= div:
            text = f"{v / div:.{digits}g}{suffix}"
            break
    return f"{text} {unit}".strip()
