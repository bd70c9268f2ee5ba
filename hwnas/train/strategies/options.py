"""Strategy options: one frozen dataclass per strategy, parsed and validated in one place.

A strategy declares ``Options``, a frozen dataclass subclassing :class:`StrategyOptions` whose
fields have defaults and type hints (``int``, ``float``, ``bool``, ``str``, ``tuple[float, float]``
or ``X | None``). :func:`parse_options` turns ``{"m": "10"}`` (command line: ``--opt m=10``) or
``{"m": 10}`` (Python, ``config.json``) into an instance; an unknown option, a value of the wrong
type or one that :meth:`StrategyOptions.checks` rejects is a one-line :class:`HwnasError` naming the
strategy, the option and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from hwnas.errors import HwnasError

O = TypeVar("O", bound="StrategyOptions")


@dataclass(frozen=True)
class StrategyOptions:
    """Base of every strategy's options (a strategy without settings uses it as is)."""

    #: options that may change when a run is resumed (any other change is refused)
    MUTABLE_ON_RESUME: ClassVar[frozenset[str]] = frozenset()

    def checks(self) -> list[tuple[bool, str]]:
        """``(ok, message)`` pairs; a message names the option and what is allowed."""
        return []

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def option_help(cls: type[StrategyOptions]) -> str:
    """``name=default`` for every option (help texts and error messages)."""
    parts = []
    for f in dataclasses.fields(cls):
        d = f.default
        shown = ",".join(f"{v:g}" for v in d) if isinstance(d, tuple) else ("auto" if d is None else str(d))
        parts.append(f"{f.name}={shown}")
    return ", ".join(parts)


def parse_options(cls: type[O], strategy: str, values: Mapping[str, Any]) -> O:
    """Instance of ``cls`` from ``values`` (strings from the command line or typed values)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in fields:
            allowed = f"allowed: {option_help(cls)}" if fields else "it takes no options"
            raise HwnasError(f"strategy {strategy!r} has no option {key!r}; {allowed}")
        kwargs[key] = _coerce(raw, hints[key], strategy, key)
    opts = cls(**kwargs)
    for ok, msg in opts.checks():
        if not ok:
            raise HwnasError(f"strategy {strategy!r}: option {msg}")
    return opts


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["m=10", "range=2M,4M"]`` -> ``{"m": "10", "range": "2M,4M"}`` (``--opt`` on the command line)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise HwnasError(f"--opt takes KEY=VALUE (e.g. --opt m=10), got {item!r}")
        out[key] = value.strip()
    return out


def _coerce(raw: Any, hint: Any, strategy: str, key: str) -> Any:
    args = typing.get_args(hint)
    optional = (typing.get_origin(hint) in (typing.Union, types.UnionType)) and type(None) in args
    if optional:
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "auto", "")):
            return None
        hint = next(a for a in args if a is not type(None))
    where = f"strategy {strategy!r}: option {key}"
    if typing.get_origin(hint) is tuple:
        return _coerce_range(raw, where)
    try:
        if hint is bool:
            if isinstance(raw, str):
                word = raw.strip().lower()
                if word not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError
                return word in ("true", "1", "yes", "on")
            return bool(raw)
        if hint is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            return int(raw) if not isinstance(raw, str) else int(raw.strip())
        if hint is float:
            from hwnas.units import parse_amount

            return parse_amount(raw.strip(), key, allow_zero=True) if isinstance(raw, str) else float(raw)
        return str(raw)
    except (TypeError, ValueError, HwnasError):
        kind = {bool: "true or false", int: "an integer", float: "a number"}.get(hint, "a string")
        raise HwnasError(f"{where} must be {kind}, got {raw!r}") from None


def _coerce_range(raw: Any, where: str) -> tuple[float, float]:
    from hwnas.train.config import parse_range

    if isinstance(raw, str):
        try:
            return parse_range(raw)
        except HwnasError as exc:
            raise HwnasError(f"{where}: {exc}") from None
    try:
        lo, hi = (float(v) for v in raw)
    except (TypeError, ValueError):
        raise HwnasError(f"{where} must be LO,HI (e.g. 2M,4M), got {raw!r}") from None
    return lo, hi
