"""Range checks of numeric settings, run before anything is written (a table, a state file, a run
folder). Each failure is a one-line :class:`~hwnas.errors.HwnasError` naming the option, the value
and what is allowed; NaN and infinity are refused everywhere a finite number is meant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


# ---- the range of every numeric command-line option ----------------------------------------------
@dataclass(frozen=True)
class OptionRange:
    """What a numeric (or amount) option accepts: ``kind`` int, float or amount (``330M``)."""

    kind: str
    min: float | None = None
    max: float | None = None
    above: float | None = None  # strictly greater than
    below: float | None = None  # strictly less than

    def check(self, name: str, value: Any) -> Any:
        """``value`` unchanged, or HwnasError naming ``name``, the value and what is allowed."""
        if value is None:
            return None
        if self.kind == "amount":
            from hwnas.units import parse_amount

            number = parse_amount(value, name, allow_zero=self.min == 0)
        elif self.kind == "int":
            number = check_int(name, value)
        else:
            number = check_float(name, value)
        if self.above is not None and number <= self.above:
            raise HwnasError(f"{name} must be > {self.above:g}, got {value}")
        if self.below is not None and number >= self.below:
            raise HwnasError(f"{name} must be < {self.below:g}, got {value}")
        if self.min is not None and number < self.min:
            raise HwnasError(f"{name} must be >= {self.min:g}, got {value}")
        if self.max is not None and number > self.max:
            raise HwnasError(f"{name} must be <= {self.max:g}, got {value}")
        return value


def _int(min: int | None = None, max: int | None = None) -> OptionRange:
    return OptionRange("int", min=min, max=max)


def _float(**bounds: float) -> OptionRange:
    return OptionRange("float", **bounds)


#: counts that only have to be positive, up to a bound no run comes near (a typo of ``1e9``
#: is refused instead of allocating or running for days)
_COUNT = _int(1, 10**7)
_COUNT0 = _int(0, 10**7)
#: seeds: what numpy's and torch's generators accept
_SEED = _int(0, 2**32 - 1)

#: The range of every numeric option of every command, by option name; ``"<command> <option>"``
#: keys (``"lut validate --n"``) refine one command. The CLI checks them as it parses (before a
#: command runs, so before any table, state file or run folder is created); NaN and infinity are
#: refused for every float. A test fails for a numeric option missing here.
OPTION_RANGES: dict[str, OptionRange] = {
    # the space
    "--width": _float(above=0, max=16),
    "--resolution": _int(8, 4096),
    "--num-classes": _int(1, 10**6),
    # measuring
    "--threads": _int(1, 1024),
    "--warmup": _int(0, 10**6),
    "--runs": _int(1, 10**6),
    "--repetitions": _int(1, 10**4),
    "--rounds": _int(1, 10**4),
    "--max-keys": _COUNT,
    "--calibrate": _int(0, 10**5),
    "--inputs": _int(0, 10**5),
    "--sustained": _float(min=0, max=86400),
    # budgets
    "--max-latency-ms": _float(above=0, max=1e9),
    "--max-macs": OptionRange("amount", above=0),
    "--max-params": OptionRange("amount", above=0),
    "--max-bitops": OptionRange("amount", above=0),
    # search
    "--pop": _int(2, 10**6),
    "--gens": _int(1, 10**6),
    "--iterations": _int(1, 10**6),
    "--buckets": _int(1, 10**4),
    "--per-bucket": _int(1, 10**4),
    # training
    "--epochs": _int(1, 10**6),
    "--batch-size": _int(1, 2**20),
    "--lr": _float(above=0, max=100),
    "--lr-warmup-epochs": _float(min=0, max=10**6),
    "--momentum": _float(min=0, below=1),
    "--weight-decay": _float(min=0, max=1),
    "--label-smoothing": _float(min=0, below=1),
    "--kd-ratio": _float(min=0, max=1),
    "--kd-temperature": _float(above=0, max=1e3),
    "--workers": _int(0, 1024),
    "--steps-per-epoch": _COUNT,
    "--log-every": _COUNT,
    "--stop-after-epochs": _COUNT,
    "--seed": _SEED,
    "--seeds": _int(1, 1000),
    # evaluation, calibration, data
    "--n": _COUNT,
    "--eval-batches": _COUNT,
    "--calib-batches": _COUNT0,
    "--calib-images": _COUNT,
    "--test-images": _COUNT,
    "--max-images": _COUNT,
    "--test-fraction": _float(above=0, below=1),
}


def option_range(command: str, option: str) -> OptionRange | None:
    """The range of ``option`` of ``command`` (``"lut validate"``): its own entry, else the
    option's."""
    return OPTION_RANGES.get(f"{command} {option}", OPTION_RANGES.get(option))
