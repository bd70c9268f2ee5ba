"""Search objectives and budgets as data (as pymoo keeps problems, objectives and constraints apart).

An :class:`Objective` is a named, vectorised metric ``fn(genes_matrix) -> values`` (lower is better)
with an optional ``budget``: an upper bound that becomes a pymoo constraint. The same object serves
as an objective (minimised) or as a pure constraint (``ArchProblem(..., constraints=[...])``).

Built-ins:

* ``macs`` / ``flops`` / ``params`` / ``bitops`` / ``searched_bitops`` / ``peak_act_bytes`` from
  :class:`~hwnas.cost.CostModel` (``searched_bitops``: the searched blocks only, as SPOS counts
  BitOps budgets);
* ``latency`` from any vectorised predictor ``predict(genes_matrix) -> ms`` (the device latency
  tables of ``hwnas.latency`` provide one; see :func:`load_latency_predictor`);
* ``error`` = 100 - top-1 accuracy (%) of a subnet with inherited supernet weights, measured by the
  training stage's ``SubnetEvaluator`` (BN recalibrated per subnet, SPOS Sec. 3.4). It is the only
  *expensive* objective: :class:`~hwnas.search.problem.ArchProblem` calls it on feasible rows only,
  so budget violators are ditched without an evaluation (GreedyNAS Sec. 4.2) and get ``penalty``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.cost import COST_FIELDS, CostModel
from hwnas.errors import HwnasError
from hwnas.spaces.base import SearchSpace
from hwnas.units import format_amount

#: display units of the cost-model metrics.
COST_UNITS = {"macs": "MACs", "flops": "FLOPs", "params": "params", "bitops": "BitOps",
              "searched_bitops": "BitOps", "peak_act_bytes": "bytes"}
#: the names ``--objectives`` accepts.
OBJECTIVE_NAMES = ("error", "latency", *COST_FIELDS)


@dataclass(frozen=True)
class Objective:
    """A vectorised metric to minimise, optionally with an upper bound (``budget``).

    ``expensive`` marks metrics that are evaluated only on rows meeting every cheap budget
    (infeasible rows get ``penalty`` instead). ``block_additive`` declares that the value is an
    increasing affine function of a sum of per-block terms (cost model, latency-table sum with its
    calibration): then :func:`metric_minimum` finds the exact minimum over the whole space, which
    lets the search reject an impossible budget before it starts.
    """

    name: str
    unit: str
    fn: Callable[[np.ndarray], np.ndarray]
    budget: float | None = None
    expensive: bool = False
    block_additive: bool = False
    penalty: float = math.inf

    def __call__(self, genes_matrix: np.ndarray) -> np.ndarray:
        values = np.asarray(self.fn(np.asarray(genes_matrix, dtype=np.int64)), dtype=np.float64)
        return values.reshape(-1)

    def with_budget(self, budget: float | None) -> Objective:
        return dataclasses.replace(self, budget=None if budget is None else float(budget))

    def constraint(self, values: np.ndarray) -> np.ndarray:
        """pymoo inequality ``G <= 0`` (feasible): the relative excess ``value / budget - 1``.

        Relative, so that budgets in different units (ms, MACs) weigh alike in pymoo's summed
        constraint violation.
        """
        if self.budget is None:
            raise ValueError(f"objective {self.name!r} has no budget")
        if self.budget > 0:
            return np.asarray(values, dtype=np.float64) / self.budget - 1.0
        return np.asarray(values, dtype=np.float64) - self.budget

    def describe_budget(self) -> str:
        return f"{self.name} <= {format_amount(self.budget, self.unit)}"


# ---- built-in objectives -----------------------------------------------------------------------
def cost_objective(name: str, cost_model: CostModel, budget: float | None = None) -> Objective:
    """``macs``, ``flops``, ``params``, ``bitops``, ``searched_bitops`` or ``peak_act_bytes`` from the
    cost model."""
    if name not in COST_FIELDS:
        raise HwnasError(f"unknown cost metric {name!r}; known: {', '.join(COST_FIELDS)}")

    def fn(genes_matrix: np.ndarray) -> np.ndarray:
        return cost_model(genes_matrix)[name]

    return Objective(name, COST_UNITS[name], fn, budget=None if budget is None else float(budget),
                     block_additive=name != "peak_act_bytes")


def macs_objective(cost_model: CostModel, budget: float | None = None) -> Objective:
    return cost_objective("macs", cost_model, budget)


def params_objective(cost_model: CostModel, budget: float | None = None) -> Objective:
    return cost_objective("params", cost_model, budget)


def bitops_objective(cost_model: CostModel, budget: float | None = None, *,
                     searched_only: bool = False) -> Objective:
    """Total BitOps, or with ``searched_only`` those of the searched blocks (SPOS Sec. 4, Table 6)."""
    return cost_objective("searched_bitops" if searched_only else "bitops", cost_model, budget)


def latency_objective(predict: Callable[[np.ndarray], np.ndarray], budget: float | None = None,
                      *, block_additive: bool | None = None) -> Objective:
    """Predicted latency (ms) from any vectorised predictor ``predict(genes_matrix) -> ms``.

    A predictor that declares ``block_additive`` (the stored predictors of
    :mod:`hwnas.latency.predictors`) is taken at its word; a latency-table predictor (sum of per-op
    latencies, then an increasing affine calibration) is block-additive unless it has a
    non-positive ``scale``; pass ``block_additive=False`` for anything else (e.g. a learned,
    non-additive model).
    """
    if block_additive is None and hasattr(predict, "block_additive"):
        block_additive = bool(predict.block_additive)
    if block_additive is None:
        block_additive = float(getattr(predict, "scale", 1.0)) > 0
    return Objective("latency", "ms", predict, budget=None if budget is None else float(budget),
                     block_additive=block_additive)


class SubnetError:
    """``100 x (1 - top-1)`` (top-1 error in %) of subnets with inherited supernet weights, cached per architecture.

    Wraps the training stage's evaluator (``hwnas.train.evaluate.SubnetEvaluator``: BN
    recalibration on ``calib_batches``, then top-1 on ``eval_batches``). The evaluator is built on
    first use, so merely describing an accuracy objective imports nothing from the training code.
    Any object with ``__call__(genes) -> result with .top1`` (a fraction in [0, 1], as
    ``EvalResult``; optionally ``.many``) can be given as ``evaluator`` instead.
    """

    def __init__(self, evaluator: Any = None, *, supernet: Any = None, eval_batches: Any = None,
                 calib_batches: Any = None, device: str = "cpu") -> None:
        if evaluator is None and supernet is None:
            raise ValueError("give an evaluator or a supernet")
        self._evaluator = evaluator
        self._build = (supernet, eval_batches, calib_batches, device)
        self.cache: dict[tuple[int, ...], float] = {}
        self.n_evaluated = 0

    def evaluator(self) -> Any:
        if self._evaluator is None:
            try:
                from hwnas.train.evaluate import SubnetEvaluator
            except ImportError as exc:
                raise HwnasError(f"the accuracy objective needs the supernet evaluator "
                                 f"(hwnas.train.evaluate), which cannot be imported: {exc}") from None
            supernet, eval_batches, calib_batches, device = self._build
            self._evaluator = SubnetEvaluator(supernet, eval_batches, calib_batches, device)
        return self._evaluator

    def __call__(self, genes_matrix: np.ndarray) -> np.ndarray:
        rows = [tuple(int(v) for v in r) for r in np.asarray(genes_matrix, dtype=np.int64)]
        missing = list(dict.fromkeys(r for r in rows if r not in self.cache))
        if missing:
            ev = self.evaluator()
            results = ev.many(missing) if hasattr(ev, "many") else [ev(g) for g in missing]
            for genes, res in zip(missing, results):
                self.cache[genes] = 100.0 * (1.0 - float(res.top1))  # top1 is a fraction
            self.n_evaluated += len(missing)
        return np.array([self.cache[r] for r in rows], dtype=np.float64)


def error_objective(evaluator: Any = None, *, supernet: Any = None, eval_batches: Any = None,
                    calib_batches: Any = None, device: str = "cpu",
                    budget: float | None = None) -> Objective:
    """Top-1 error (%) on held-out batches with inherited weights; expensive, cached per genes.

    Infeasible architectures are not evaluated and get error 100 %.
    """
    fn = SubnetError(evaluator, supernet=supernet, eval_batches=eval_batches,
                     calib_batches=calib_batches, device=device)
    return Objective("error", "%", fn, budget=None if budget is None else float(budget),
                     expensive=True, penalty=100.0)


def load_latency_predictor(device: str, space: SearchSpace, runtime: str = "tflite",
                           root: str | Path | None = None, precision: str | None = None,
                           predictor: str | None = None, adapt: bool = False,
                           on_adapt: Callable[[Any], None] | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The vectorised latency predictor of ``device`` / ``runtime`` at ``precision`` (default
    fp32) for ``space``: the table's calibrated sum, or with ``predictor`` the stored predictor of
    that name (``hwnas lut fit``; see :mod:`hwnas.latency.predictors`), which declares whether it
    is ``block_additive``.

    Owned by the latency stage (``hwnas.latency``): the table file
    (``<root or hwnas/latency_tables>/<device>/<space>-<runtime>[-<precision>].json``), its calibration and the checks that it
    belongs to ``space`` and ``runtime`` live there; their errors pass through unchanged.

    With ``adapt``, a table of ``device`` measured on another computer while ``device`` is this
    one (the host) is first adapted to this computer from a few end-to-end measurements, or the
    cached adaptation of this computer is reused (:mod:`hwnas.latency.adapt`); ``on_adapt``
    receives the :class:`~hwnas.latency.adapt.Adaptation` (not called when there was nothing to
    adapt).
    """
    try:
        from hwnas.latency.predict import LatencyPredictor
        from hwnas.latency.table import load_table
    except ImportError:
        raise HwnasError("no latency table support installed (hwnas.latency cannot be imported): "
                         "latency objectives and --max-latency-ms are unavailable") from None
    if predictor is not None:
        from hwnas.latency.predictors.fitting import open_predictor

        return open_predictor(device, space, predictor, runtime, root, precision)
    table = load_table(device, space, runtime, root, precision)
    if adapt:
        from hwnas.latency.adapt import adapt_for_device

        adaptation = adapt_for_device(device, table, space, root)
        if adaptation is not None:
            adaptation.apply(table, space)
            if on_adapt is not None:
                on_adapt(adaptation)
    return LatencyPredictor(table, space)


# ---- budgets -----------------------------------------------------------------------------------
def metric_minimum(objective: Objective, space: SearchSpace) -> tuple[float, tuple[int, ...]] | None:
    """Exact minimum of a block-additive metric over the whole space, and an architecture reaching it.

    :meth:`~hwnas.spaces.base.SearchSpace.minimize_additive` probes each block's options around a
    reference architecture (jointly per elastic-depth gene). ``None`` for metrics that are not
    block-additive.
    """
    if not objective.block_additive:
        return None
    best = np.asarray(space.minimize_additive(objective), dtype=np.int64)
    return float(objective(best[None, :])[0]), tuple(int(v) for v in best)


def unique_names(objectives: Sequence[Objective]) -> None:
    names = [o.name for o in objectives]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise HwnasError(f"metric {dup[0]!r} is given twice; name each objective / constraint once")
