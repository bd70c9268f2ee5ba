"""Hardware-aware architecture search: objectives and budgets as data, a pymoo problem over integer
genes, categorical operators, NSGA-II / SPOS evolution / random search, and a resumable run that
writes the Pareto set. :func:`build_problem` sets a search up from the settings ``hwnas search``
takes.

The names below are imported on first use, so ``import hwnas.search.commands`` (the CLI) loads
neither pymoo nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ALGORITHMS": "algorithms", "make_algorithm": "algorithms",
    "SearchSetup": "build", "build_problem": "build", "checkpoint_error_objective": "build",
    "Objective": "objectives", "bitops_objective": "objectives", "cost_objective": "objectives",
    "error_objective": "objectives", "latency_objective": "objectives",
    "load_latency_predictor": "objectives", "macs_objective": "objectives",
    "params_objective": "objectives",
    "ArchProblem": "problem", "EvaluationHistory": "problem", "problem_from_names": "problem",
    "SearchResult": "run", "run_search": "run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hwnas.search' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hwnas.search.{module}"), name)


def __dir__() -> list[str]:
    return __all__
