"""The architecture search problem: a pymoo ``Problem`` over integer genes.

``ArchProblem(space, objectives, constraints)``: ``n_var = space.num_genes``, ``xl = 0``,
``xu = choices - 1``, ``vtype = int``. ``_evaluate(X, out)`` fills ``out["F"]`` (one column per
objective, all minimised) and ``out["G"]`` (one column per budget, ``<= 0`` feasible) for the whole
population at once. Every distinct architecture is evaluated once: results are memoised in an
:class:`EvaluationHistory` (genes, every metric, feasibility, generation) that the search writes out
as ``history.csv`` and stores in its resumable state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.core.problem import Problem

from hwnas.cost import COST_FIELDS, CostModel
from hwnas.errors import HwnasError
from hwnas.search.objectives import Objective, unique_names
from hwnas.search.operators import row_keys
from hwnas.spaces.base import SearchSpace


class EvaluationHistory:
    """Every distinct architecture evaluated: genes, metric values (``columns``), feasibility and the
    generation of its first evaluation. Rows are appended in evaluation order."""

    def __init__(self, num_genes: int, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self._col = {c: i for i, c in enumerate(self.columns)}
        self._genes = np.zeros((0, num_genes), dtype=np.int64)
        self._values = np.zeros((0, len(self.columns)), dtype=np.float64)
        self._feasible = np.zeros(0, dtype=bool)
        self._gen = np.zeros(0, dtype=np.int64)
        self._n = 0
        self._index: dict[bytes, int] = {}

    def __len__(self) -> int:
        return self._n

    @property
    def genes(self) -> np.ndarray:
        return self._genes[: self._n]

    @property
    def values(self) -> np.ndarray:
        return self._values[: self._n]

    @property
    def feasible(self) -> np.ndarray:
        return self._feasible[: self._n]

    @property
    def gen(self) -> np.ndarray:
        return self._gen[: self._n]

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self._col[name]]

    def lookup(self, X: np.ndarray) -> np.ndarray:
        """Row index of each architecture of ``X``, -1 where not evaluated yet."""
        return np.array([self._index.get(k, -1) for k in row_keys(X)], dtype=np.int64)

    def contains(self, X: np.ndarray) -> np.ndarray:
        return self.lookup(X) >= 0

    def add(self, genes: np.ndarray, values: np.ndarray, feasible: np.ndarray, gen: int | np.ndarray) -> None:
        n = len(genes)
        need = self._n + n
        if need > len(self._genes):
            cap = max(need, 2 * len(self._genes), 256)
            self._genes = _grow(self._genes, cap)
            self._values = _grow(self._values, cap)
            self._feasible = _grow(self._feasible, cap)
            self._gen = _grow(self._gen, cap)
        sl = slice(self._n, need)
        self._genes[sl] = genes
        self._values[sl] = values
        self._feasible[sl] = feasible
        self._gen[sl] = gen
        for i, k in enumerate(row_keys(genes)):
            self._index[k] = self._n + i
        self._n = need

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"history_genes": self.genes.copy(), "history_values": self.values.copy(),
                "history_feasible": self.feasible.copy(), "history_gen": self.gen.copy()}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.__init__(self._genes.shape[1], self.columns)
        self.add(arrays["history_genes"], arrays["history_values"], arrays["history_feasible"],
                 arrays["history_gen"])


def _grow(a: np.ndarray, cap: int) -> np.ndarray:
    out = np.zeros((cap, *a.shape[1:]), dtype=a.dtype)
    out[: len(a)] = a
    return out


class ArchProblem(Problem):
    """Minimise ``objectives`` over the architectures of ``space`` under every ``budget``.

    ``objectives`` are minimised (pymoo ``F``). ``constraints`` are further metrics that only bound
    the search (each needs a ``budget``); a budget on an objective is a constraint too. Constraints
    are relative excesses ``value / budget - 1`` (``G <= 0`` feasible). Expensive objectives (the
    supernet error) run only on rows that meet every cheap budget; the others get their ``penalty``
    (GreedyNAS: "if a path violates the constraint, we just ditch it").
    """

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective],
                 constraints: Sequence[Objective] = (), cost_model: CostModel | None = None) -> None:
        objectives, constraints = tuple(objectives), tuple(constraints)
        if not objectives:
            raise HwnasError("a search needs at least one objective")
        unique_names(objectives + constraints)
        for c in constraints:
            if c.budget is None:
                raise HwnasError(f"constraint {c.name!r} has no budget")
        self.space = space
        self.objectives = objectives
        self.constraints = constraints
        self.budgeted = tuple(o for o in objectives + constraints if o.budget is not None)
        self.cost_model = cost_model if cost_model is not None else CostModel(space)
        metrics = objectives + constraints
        self.metric_names = tuple(dict.fromkeys([o.name for o in metrics] + list(COST_FIELDS)))
        self.history = EvaluationHistory(space.num_genes, self.metric_names)
        self.generation = 0  # stamped on new history rows; the search loop sets it
        self._memo: dict[str, np.ndarray] = {}
        self._obj_cols = [self.metric_names.index(o.name) for o in objectives]
        self._budget_cols = [self.metric_names.index(o.name) for o in self.budgeted]
        super().__init__(n_var=space.num_genes, n_obj=len(objectives),
                         n_ieq_constr=len(self.budgeted), xl=np.zeros(space.num_genes, dtype=np.int64),
                         xu=np.asarray(space.choices, dtype=np.int64) - 1, vtype=int)

    # ---- metrics ------------------------------------------------------------------------------
    def settings(self) -> dict:
        """What identifies this problem (checked when a search resumes)."""
        return {"space": self.space.config(),
                "objectives": [{"name": o.name, "unit": o.unit, "budget": o.budget} for o in self.objectives],
                "constraints": [{"name": o.name, "unit": o.unit, "budget": o.budget} for o in self.constraints]}

    def unit_of(self, name: str) -> str:
        from hwnas.search.objectives import COST_UNITS

        for o in self.objectives + self.constraints:
            if o.name == name:
                return o.unit
        return COST_UNITS.get(name, "")

    def constraint_values(self, values: np.ndarray) -> np.ndarray:
        """``G`` from a metric matrix whose columns are :attr:`metric_names`."""
        if not self.budgeted:
            return np.zeros((len(values), 0))
        return np.stack([o.constraint(values[:, c]) for o, c in zip(self.budgeted, self._budget_cols)],
                        axis=1)

    def cheap_feasible(self, X: np.ndarray) -> np.ndarray:
        """Rows meeting every budget on a cheap metric (no expensive evaluation, nothing recorded)."""
        X = np.asarray(X, dtype=np.int64)
        ok = np.ones(len(X), dtype=bool)
        for o in self.budgeted:
            if not o.expensive:
                ok &= o.constraint(o(X)) <= 0
        return ok

    def feasible_seeds(self) -> np.ndarray:
        """Architectures meeting every cheap budget found without search: the exact minimiser of
        each block-additive budgeted metric, when it meets the other budgets too. Starting points
        for sampling under budgets too tight for rejection sampling."""
        if "feasible_seeds" not in self._memo:
            from hwnas.search.objectives import metric_minimum

            found = [metric_minimum(o, self.space) for o in self.budgeted if not o.expensive]
            X = np.asarray([g for _, g in filter(None, found)], dtype=np.int64).reshape(-1, self.n_var)
            self._memo["feasible_seeds"] = X[self.cheap_feasible(X)] if len(X) else X
        return self._memo["feasible_seeds"]

    def compute_metrics(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Evaluate rows (no memo): ``(values, feasible)`` with columns :attr:`metric_names`."""
        X = self.space.validate_matrix(X)
        n = len(X)
        values = np.zeros((n, len(self.metric_names)))
        costs = self.cost_model(X)
        col = {c: i for i, c in enumerate(self.metric_names)}
        for k in COST_FIELDS:
            values[:, col[k]] = costs[k]
        metrics = self.objectives + self.constraints
        feasible = np.ones(n, dtype=bool)
        for o in metrics:
            if not o.expensive and o.name not in COST_FIELDS:
                values[:, col[o.name]] = o(X)
        for o in self.budgeted:
            if not o.expensive:
                feasible &= o.constraint(values[:, col[o.name]]) <= 0
        for o in metrics:
            if o.expensive:
                v = np.full(n, o.penalty, dtype=np.float64)
                if feasible.any():
                    v[feasible] = o(X[feasible])
                values[:, col[o.name]] = v
        for o in self.budgeted:
            if o.expensive:
                feasible &= o.constraint(values[:, col[o.name]]) <= 0
        return values, feasible

    def evaluate_genes(self, X: np.ndarray) -> np.ndarray:
        """Metric rows of ``X`` (columns :attr:`metric_names`), evaluating only unseen architectures."""
        X = self.space.validate_matrix(X)
        idx = self.history.lookup(X)
        if (idx < 0).any():
            new = X[idx < 0]
            _, first = np.unique(new, axis=0, return_index=True)
            new = new[np.sort(first)]
            values, feasible = self.compute_metrics(new)
            self.history.add(new, values, feasible, self.generation)
            idx = self.history.lookup(X)
        return self.history.values[idx]

    # ---- pymoo ----------------------------------------------------------------------------------
    def _evaluate(self, X, out, *args, **kwargs):
        values = self.evaluate_genes(np.asarray(X))
        out["F"] = values[:, self._obj_cols]
        if self.budgeted:
            out["G"] = self.constraint_values(values)


def problem_from_names(space: SearchSpace, objectives: Sequence[str],
                       budgets: dict[str, float | None] | None = None, *, latency=None,
                       error: Objective | None = None, cost_model: CostModel | None = None) -> ArchProblem:
    """An :class:`ArchProblem` from metric names (``error``, ``latency``, ``macs``, ``params``...).

    ``budgets`` maps metric names to upper bounds; a budgeted metric that is not an objective
    becomes a pure constraint. ``latency`` is a vectorised predictor (genes -> ms) and ``error``
    the accuracy objective (:func:`~hwnas.search.objectives.error_objective`), needed only when
    those metrics are used.
    """
    from hwnas.search.objectives import OBJECTIVE_NAMES, cost_objective, latency_objective

    cm = cost_model if cost_model is not None else CostModel(space)
    budgets = {k: v for k, v in (budgets or {}).items() if v is not None}

    def metric(name: str) -> Objective:
        if name in COST_FIELDS:
            return cost_objective(name, cm)
        if name == "latency":
            if latency is None:
                raise HwnasError("the latency metric needs a latency predictor (pass --device)")
            return latency_objective(latency)
        if name == "error":
            if error is None:
                raise HwnasError("the error objective needs a supernet (pass --checkpoint)")
            return error
        raise HwnasError(f"unknown metric {name!r}; known: {', '.join(OBJECTIVE_NAMES)}")

    names = list(objectives)
    if not names:
        raise HwnasError("give at least one objective")
    objs = [metric(n).with_budget(budgets.get(n)) for n in names]
    cons = [metric(n).with_budget(b) for n, b in budgets.items() if n not in names]
    return ArchProblem(space, objs, cons, cost_model=cm)
