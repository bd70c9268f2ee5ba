"""Supernet training: config, recipes, the one loop, pluggable strategies, subnet evaluation, ranking check.

Names are imported lazily, so importing ``hwnas.train.cli`` (done by every ``hwnas`` command) does
not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "hwnas.train.config",
    "EvalResult": "hwnas.train.evaluate",
    "SubnetEvaluator": "hwnas.train.evaluate",
    "evaluate_many": "hwnas.train.evaluate",
    "evaluate_subnet": "hwnas.train.evaluate",
    "TrainingInterrupted": "hwnas.train.loop",
    "TrainResult": "hwnas.train.loop",
    "train_supernet": "hwnas.train.loop",
    "Recipe": "hwnas.train.recipes",
    "register_recipe": "hwnas.train.recipes",
    "PathRun": "hwnas.train.strategies",
    "RunContext": "hwnas.train.strategies",
    "StepLoss": "hwnas.train.strategies",
    "Strategy": "hwnas.train.strategies",
    "StrategyOptions": "hwnas.train.strategies",
    "create_strategy": "hwnas.train.strategies",
    "register_strategy": "hwnas.train.strategies",
    "strategy_names": "hwnas.train.strategies",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hwnas.train' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
