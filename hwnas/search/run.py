"""Run a search: the generation loop, per-generation checkpoints, resume, and the result.

``run_search(problem, algorithm="nsga2", pop=50, gens=20, seed=0, out_dir=...)`` drives a pymoo
algorithm with ask / evaluate / tell, one generation at a time, under a rich progress bar. After
every generation it writes ``search_state.npz`` atomically: the population (genes, F, G and the
NSGA-II rank / crowding), the generation, the algorithm's random-generator state and the whole
evaluation history. ``resume=True`` rebuilds the algorithm from that file and continues exactly
where it stopped (a run of 3 generations equals 2 + resume + 1), without evaluating any architecture
twice. The result files (``pareto.csv``, ``pareto.json``, ``history.csv``, ``pareto.png``) are
written by :mod:`hwnas.search.output`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pymoo.core.population import Population

from hwnas.checkpoint import version_stamp
from hwnas.errors import HwnasError
from hwnas.io import atomic_write
from hwnas.search.algorithms import ALGORITHMS, make_algorithm
from hwnas.search.objectives import metric_minimum
from hwnas.search.problem import ArchProblem
from hwnas.units import format_amount

STATE_FILE = "search_state.npz"
STATE_FORMAT = "hwnas.search_state"
STATE_VERSION = 1
#: per-individual pymoo attributes kept in the state besides X, F and G (NSGA-II's tournament).
POP_EXTRAS = ("rank", "crowding")


@dataclass
class SearchResult:
    """Outcome of a search. Indices point into ``problem.history`` (every distinct evaluation)."""

    problem: ArchProblem
    settings: dict[str, Any]
    population: np.ndarray
    pareto_index: np.ndarray
    best_index: int
    generations: int
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def history(self):
        return self.problem.history

    @property
    def pareto_genes(self) -> np.ndarray:
        return self.history.genes[self.pareto_index]

    @property
    def pareto_F(self) -> np.ndarray:
        return self.history.values[self.pareto_index][:, [self.history.columns.index(o.name)
                                                          for o in self.problem.objectives]]

    def metrics(self, index: int) -> dict[str, float]:
        return {c: float(v) for c, v in zip(self.history.columns, self.history.values[index])}

    @property
    def best_genes(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.history.genes[self.best_index])


# ---- fronts ---------------------------------------------------------------------------------------
def nondominated_mask(F: np.ndarray) -> np.ndarray:
    """Rows of ``F`` (minimised) not dominated by any other row; equal rows are all kept."""
    F = np.asarray(F, dtype=np.float64)
    if len(F) == 0:
        return np.zeros(0, dtype=bool)
    if F.shape[1] == 1:
        return F[:, 0] == F[:, 0].min()
    if F.shape[1] == 2:
        # unique rows come sorted by (f1, f2): a row is dominated iff an earlier one has f2 <= its f2
        U, inverse = np.unique(F, axis=0, return_inverse=True)
        prev_min = np.concatenate([[np.inf], np.minimum.accumulate(U[:-1, 1])])
        return (U[:, 1] < prev_min)[inverse.reshape(-1)]
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    mask = np.zeros(len(F), dtype=bool)
    mask[NonDominatedSorting().do(F, only_non_dominated_front=True)] = True
    return mask


def pareto_indices(problem: ArchProblem) -> np.ndarray:
    """Feasible, non-dominated evaluations, sorted by the first objective."""
    h = problem.history
    feas = np.flatnonzero(h.feasible)
    if len(feas) == 0:
        return feas
    F = h.values[feas][:, [h.columns.index(o.name) for o in problem.objectives]]
    front = feas[nondominated_mask(F)]
    F0 = h.column(problem.objectives[0].name)[front]
    return front[np.lexsort((front, F0))]


# ---- budgets ---------------------------------------------------------------------------------------
def _cheap_metrics(problem: ArchProblem, genes: tuple[int, ...]) -> str:
    """``macs=..., params=..., latency=...`` of one architecture (no expensive evaluation)."""
    X = np.asarray([genes], dtype=np.int64)
    costs = problem.cost_model(X)
    shown = dict.fromkeys(["macs", "params", "bitops", *(o.name for o in problem.budgeted if o.name in costs)])
    values = {c: float(costs[c][0]) for c in shown}
    for o in problem.objectives + problem.constraints:
        if not o.expensive and o.name not in costs:
            values[o.name] = float(o(X)[0])
    return ", ".join(f"{c}={format_amount(v, problem.unit_of(c))}" for c, v in values.items())


def check_budgets_reachable(problem: ArchProblem) -> None:
    """Raise before searching when a budget is below the cheapest architecture of the space."""
    space = problem.space
    for o in problem.budgeted:
        found = metric_minimum(o, space)
        if found is None:
            continue
        lowest, genes = found
        if lowest > o.budget * (1 + 1e-12):
            smallest = space.smallest()
            raise HwnasError(
                f"the budget {o.describe_budget()} is below the cheapest architecture in the space: "
                f"the lowest {o.name} in space {space.name!r} is {format_amount(lowest, o.unit)} "
                f"(genes {','.join(map(str, genes))}); space.smallest() costs "
                f"{_cheap_metrics(problem, smallest)} (genes {','.join(map(str, smallest))})")


def _no_feasible_error(problem: ArchProblem) -> HwnasError:
    h = problem.history
    G = problem.constraint_values(h.values)
    cv = np.maximum(G, 0).sum(axis=1)
    i = int(np.argmin(cv))
    budgets = "; ".join(o.describe_budget() for o in problem.budgeted)
    metrics = ", ".join(f"{c}={format_amount(h.values[i][j], problem.unit_of(c))}"
                        for j, c in enumerate(h.columns)
                        if c in [o.name for o in problem.budgeted] or c in ("macs", "params"))
    lows = []
    for o in problem.budgeted:
        found = metric_minimum(o, problem.space)
        if found is not None:
            lows.append(f"{o.name} {format_amount(found[0], o.unit)}")
    hint = (f"; the space's lowest values are {', '.join(lows)} (each alone): try more generations, "
            f"nsga2, or looser budgets" if lows else "")
    return HwnasError(
        f"no evaluated architecture meets the budgets ({budgets}) after {len(h)} evaluations; "
        f"the cheapest found is genes {','.join(map(str, h.genes[i]))} with {metrics}{hint}")


# ---- state -----------------------------------------------------------------------------------------
def _settings(problem: ArchProblem, algorithm: str, pop: int, seed: int, options: dict) -> dict:
    return {"algorithm": algorithm, "pop": int(pop), "seed": int(seed), **options, **problem.settings()}


def save_state(path: Path, algo: Any, problem: ArchProblem, settings: dict, gens: int) -> Path:
    """Atomically write the resumable state after a completed generation."""
    pop = algo.pop
    arrays = {"pop_X": pop.get("X").astype(np.int64), "pop_F": pop.get("F").astype(np.float64),
              "pop_G": np.asarray(pop.get("G"), dtype=np.float64).reshape(len(pop), -1)}
    for key in POP_EXTRAS:
        vals = [ind.get(key) for ind in pop]
        if all(v is not None for v in vals):
            arrays[f"pop_{key}"] = np.asarray(vals, dtype=np.float64)
    arrays.update(problem.history.to_arrays())
    meta = {"format": STATE_FORMAT, "format_version": STATE_VERSION, "settings": settings,
            "generation": int(algo.n_iter) - 1, "gens": int(gens), "n_eval": int(algo.evaluator.n_eval),
            "rng": algo.random_state.bit_generator.state, "columns": list(problem.history.columns),
            "versions": version_stamp()}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return atomic_write(path, write)


def load_state(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except Exception as exc:  # truncated / foreign file
        raise HwnasError(f"cannot read search state {path}: {str(exc).splitlines()[0][:200]}") from None
    if meta.get("format") != STATE_FORMAT:
        raise HwnasError(f"{path} is not an hwnas search state")
    if meta.get("format_version", 0) > STATE_VERSION:
        raise HwnasError(f"search state {path} has format version {meta['format_version']}; "
                         f"this hwnas reads up to {STATE_VERSION}")
    return meta, arrays


def _check_resumable(path: Path, meta: dict, settings: dict, problem: ArchProblem) -> None:
    old = meta["settings"]
    for key in settings:
        if old.get(key) != settings[key]:
            raise HwnasError(f"cannot resume {path}: it was started with {key}={json.dumps(old.get(key))}, "
                             f"this run has {key}={json.dumps(settings[key])}; use the same settings "
                             f"or another --out")
    if meta["columns"] != list(problem.history.columns):
        raise HwnasError(f"cannot resume {path}: it records metrics {meta['columns']}, "
                         f"this run {list(problem.history.columns)}")


def _restore(algo: Any, problem: ArchProblem, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    problem.history.load_arrays(arrays)
    n = len(arrays["pop_X"])
    pop = Population.new("X", arrays["pop_X"], "F", arrays["pop_F"], "G", arrays["pop_G"],
                         "H", np.zeros((n, 0)))
    for key in POP_EXTRAS:
        if f"pop_{key}" in arrays:
            pop.set(key, arrays[f"pop_{key}"])
    pop.apply(lambda ind: ind.evaluated.update(["F", "G", "H"]))
    algo.pop = pop
    algo.is_initialized = True
    algo.start_time = time.time()
    algo.n_iter = int(meta["generation"]) + 1
    algo.evaluator.n_eval = int(meta["n_eval"])
    algo.random_state.bit_generator.state = meta["rng"]
    algo._set_optimum()


# ---- the loop --------------------------------------------------------------------------------------
def run_search(problem: ArchProblem, algorithm: str = "nsga2", pop: int = 50, gens: int = 20,
               seed: int = 0, out_dir: str | Path | None = None, initial: np.ndarray | None = None,
               resume: bool = False, progress: bool = True, *, mutation_prob: float = 0.1,
               top_k: int = 10, crossover_prob: float = 0.9, plot: bool = True,
               extra_settings: dict[str, Any] | None = None) -> SearchResult:
    """Search ``problem`` with ``algorithm`` (``nsga2`` | ``evolution`` | ``random``).

    ``pop`` x ``gens`` evaluations at most (generation 1 is the initial population). ``initial``
    seeds it (e.g. a GreedyNAS candidate pool). With ``out_dir`` the state is checkpointed after
    every generation and the results are written there; ``resume`` continues a stopped run from
    that folder (``gens`` may be raised to run longer). ``extra_settings`` (JSON-able, e.g. the
    checkpoint and evaluation data of the error objective) are recorded in the results and must
    match on resume. Raises :class:`HwnasError` when a budget is
    below the cheapest architecture (before searching) or no evaluated architecture meets them.
    """
    if algorithm not in ALGORITHMS:
        raise HwnasError(f"unknown search algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
    if gens < 1:
        raise HwnasError(f"the number of generations must be >= 1, got {gens}")
    check_budgets_reachable(problem)
    options = {"mutation_prob": float(mutation_prob)}
    if algorithm == "nsga2":
        options["crossover_prob"] = float(crossover_prob)
    if algorithm == "evolution":
        options["top_k"] = int(top_k)
    settings = {**_settings(problem, algorithm, pop, seed, options), **(extra_settings or {})}
    algo = make_algorithm(algorithm, problem, pop=pop, initial=initial, mutation_prob=mutation_prob,
                          crossover_prob=crossover_prob, top_k=top_k)
    algo.setup(problem, termination=("n_gen", gens), seed=seed)

    out = Path(out_dir) if out_dir is not None else None
    state_path = out / STATE_FILE if out is not None else None
    resumed_from = 0
    if state_path is not None and state_path.exists():
        if not resume:
            raise HwnasError(f"{out} already holds a search ({STATE_FILE}); pass --resume to continue "
                             f"it or choose another output folder")
        meta, arrays = load_state(state_path)
        _check_resumable(state_path, meta, settings, problem)
        _restore(algo, problem, meta, arrays)
        resumed_from = int(meta["generation"])

    done = resumed_from
    with _ProgressBar(progress, algorithm, gens, done) as bar:
        while done < gens and algo.has_next():
            infills = algo.ask()
            if infills is None:
                break
            problem.generation = int(algo.n_iter)
            algo.evaluator.eval(problem, infills, algorithm=algo)
            algo.tell(infills=infills)
            done = int(algo.n_iter) - 1
            if state_path is not None:
                save_state(state_path, algo, problem, settings, gens)
            bar(done, _progress_note(problem))

    front = pareto_indices(problem)
    settings = {**settings, "gens": int(gens), "generations_run": done, "resumed_from": resumed_from,
                "n_evaluated": len(problem.history),
                "initial": 0 if initial is None else int(len(initial))}
    if len(front) == 0:
        if out is not None:
            from hwnas.search.output import write_history

            write_history(problem, out)
        raise _no_feasible_error(problem)
    result = SearchResult(problem=problem, settings=settings,
                          population=algo.pop.get("X").astype(np.int64), pareto_index=front,
                          best_index=int(front[0]), generations=done)
    if out is not None:
        from hwnas.search.output import write_results

        result.files = write_results(result, out, plot=plot)
    return result


def _progress_note(problem: ArchProblem) -> str:
    h = problem.history
    feas = h.feasible
    if not feas.any():
        return f"{len(h)} evaluated, none within budget"
    o = problem.objectives[0]
    best = h.column(o.name)[feas].min()
    return f"{len(h)} evaluated, best {o.name} {format_amount(best, o.unit)}"


class _ProgressBar:
    """Progress over generations (:func:`hwnas.ui.progress`: a bar on a terminal, plain lines
    otherwise; nothing when disabled)."""

    def __init__(self, enabled: bool, algorithm: str, gens: int, done: int) -> None:
        self.enabled = enabled
        self.args = (algorithm, gens, done)

    def __enter__(self):
        from hwnas.ui import progress

        algorithm, gens, done = self.args
        self.context = progress(fields={"note": "{}"}, enabled=self.enabled)
        prog = self.context.__enter__()
        task = prog.add_task(f"search ({algorithm}) generations", total=gens, completed=done, note="")

        def update(d: int, note: str) -> None:
            prog.update(task, completed=d, note=note)

        return update

    def __exit__(self, *exc):
        self.context.__exit__(*exc)
        return False
