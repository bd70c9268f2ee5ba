"""Range checks of numeric settings, run before anything is written (a table, a state file, a run
folder). Each failure is a one-line :class:`~hwnas.errors.HwnasError` naming the option, the value
and what is allowed; NaN and infinity are refused everywhere a finite number is meant.
"""

from __future__ import annotations

import math
from typing import Any

from hwnas.errors import HwnasError


def check_int(name: str, value: Any, *, min: int | None = None, max: int | None = None,
              optional: bool = True) -> int | None:
    """``value`` as an int within [min, max] (``None`` passes when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise HwnasError(f"{name} must be an integer, got {value!r}")
    if min is not None and value < min:
        raise HwnasError(f"{name} must be >= {min}, got {value}")
    if max is not None and value > max:
        raise HwnasError(f"{name} must be <= {max}, got {value}")
    return value


def check_float(name: str, value: Any, *, min: float | None = None, max: float | None = None,
                above: float | None = None, optional: bool = True) -> float | None:
    """``value`` as a finite float within the bounds (``above``: strictly greater)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HwnasError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise HwnasError(f"{name} must be a finite number, got {value}")
    if above is not None and value <= above:
        raise HwnasError(f"{name} must be > {above:g}, got {value:g}")
    if min is not None and value < min:
        raise HwnasError(f"{name} must be >= {min:g}, got {value:g}")
    if max is not None and value > max:
        raise HwnasError(f"{name} must be <= {max:g}, got {value:g}")
    return value


def parse_number(name: str, text: str) -> float:
    """A finite number from option text (``1.5``, ``3e6``; NaN / inf refused)."""
    try:
        v = float(text)
    except ValueError:
        raise HwnasError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(v):
        raise HwnasError(f"{name} must be a finite number, got {text!r}")
    return v
