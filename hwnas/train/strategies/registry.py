"""Registry of training strategies by name: ``register_strategy`` / ``create_strategy`` (timm-style,
like the space and dataset registries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwnas.errors import HwnasError
from hwnas.train.strategies.base import RunContext, Strategy
from hwnas.train.strategies.options import StrategyOptions, parse_options

_STRATEGIES: dict[str, type[Strategy]] = {}
#: listed first, in this order (plug-ins follow in registration order)
BUILTIN = ("uniform", "constrained", "greedy")


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    _STRATEGIES[cls.name] = cls
    return cls


def strategy_names() -> list[str]:
    _load_builtin()
    return [n for n in BUILTIN if n in _STRATEGIES] + [n for n in _STRATEGIES if n not in BUILTIN]


def strategy_class(name: str) -> type[Strategy]:
    _load_builtin()
    cls = _STRATEGIES.get(name)
    if cls is None:
        raise HwnasError(f"unknown strategy {name!r}; allowed: {', '.join(strategy_names())}")
    return cls


def parse_strategy_options(name: str, values: Mapping[str, Any]) -> StrategyOptions:
    """The validated options of strategy ``name`` (one-line errors naming option and allowed values)."""
    cls = strategy_class(name)
    return parse_options(cls.Options, name, values)


def create_strategy(name: str, options: Mapping[str, Any], run: RunContext) -> Strategy:
    """Build the registered strategy ``name`` with ``options`` for the run ``run``."""
    return strategy_class(name)(parse_strategy_options(name, options), run)


def _load_builtin() -> None:
    from hwnas.train.strategies import constrained, greedy, kshot, pgonas, sparse, uniform  # noqa: F401  (registers)
