"""Hardware-aware architecture search (DESIGN.md section 6): objectives and budgets as data, a pymoo
problem over integer genes, categorical operators, NSGA-II / SPOS evolution / random search, and a
resumable run that writes the Pareto set."""

from hwnas.search.algorithms import ALGORITHMS, make_algorithm
from hwnas.search.objectives import (
    Objective,
    bitops_objective,
    cost_objective,
    error_objective,
    latency_objective,
    load_latency_predictor,
    macs_objective,
    params_objective,
)
from hwnas.search.problem import ArchProblem, EvaluationHistory
from hwnas.search.run import SearchResult, run_search

__all__ = ["ALGORITHMS", "ArchProblem", "EvaluationHistory", "Objective", "SearchResult",
           "bitops_objective", "cost_objective", "error_objective", "latency_objective",
           "load_latency_predictor", "macs_objective", "make_algorithm", "params_objective",
           "run_search"]
