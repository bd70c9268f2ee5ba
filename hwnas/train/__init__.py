"""Supernet training: config, the one loop, pluggable path samplers, subnet evaluation, ranking check.

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
    "CandidatePool": "hwnas.train.samplers",
    "ConstrainedSampler": "hwnas.train.samplers",
    "GreedySampler": "hwnas.train.samplers",
    "PathSampler": "hwnas.train.samplers",
    "SamplerContext": "hwnas.train.samplers",
    "UniformSampler": "hwnas.train.samplers",
    "create_sampler": "hwnas.train.samplers",
    "register_sampler": "hwnas.train.samplers",
    "sampler_names": "hwnas.train.samplers",
    "RankCheckResult": "hwnas.train.rank_check",
    "rank_check": "hwnas.train.rank_check",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hwnas.train' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
