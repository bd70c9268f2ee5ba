"""Training strategies: registered plug-ins around the one supernet training loop.

See :mod:`hwnas.train.strategies.base` for the seam and docs/strategies.md for how to add one.
Built in: ``uniform`` (SPOS), ``constrained`` (SPOS uniform-constraint sampling over MACs or
latency ranges), ``greedy`` (GreedyNAS).
"""

from hwnas.train.strategies.base import (CostFn, CostFns, Genes, PathRun, RunContext, StepBatch,
                                         StepLoss, Strategy, TrainModel, soft_target_loss)
from hwnas.train.strategies.options import StrategyOptions, option_help, parse_assignments
from hwnas.train.strategies.registry import (create_strategy, parse_strategy_options,
                                             register_strategy, strategy_class, strategy_names)

__all__ = ["CostFn", "CostFns", "Genes", "PathRun", "RunContext", "StepBatch", "StepLoss", "Strategy",
           "StrategyOptions", "TrainModel", "create_strategy", "option_help", "parse_assignments",
           "parse_strategy_options", "register_strategy", "soft_target_loss", "strategy_class",
           "strategy_names"]
