"""Search algorithms over an :class:`~hwnas.search.problem.ArchProblem`, all pymoo ``Algorithm``s.

* ``nsga2`` (default): pymoo's NSGA-II with the categorical operators of
  :mod:`hwnas.search.operators`. Population 50, 20 generations (GreedyNAS Sec. 5.1, K-shot Sec. 3):
  1000 evaluations. Budgets are constraints; pymoo's constrained domination ranks every violator
  behind every feasible architecture, so violators never survive once feasible ones exist.
* ``evolution``: the single-objective evolutionary search of SPOS (Alg. 1), written as a pymoo
  ``Algorithm`` so that it shares the problem, the evaluation history, the run loop, the
  checkpoint/resume and the outputs with NSGA-II. It minimises the *first* objective (usually the
  error) under the budgets. Population P = 50, T = 20 iterations, the top k = 10 architectures
  ever seen are the parents; each iteration makes P/2 children by crossover of two random parents
  and P/2 by mutation of a random parent (each gene with probability 0.1); children that violate
  a cheap budget or were evaluated before are regenerated ("Crossover and mutation are repeated to
  generate enough new candidates that meet the given architecture constraints"). Until a feasible
  architecture is found the parents are the least violating ones and children are unrestricted.
* ``random``: the baseline of SPOS Table 3 / GreedyNAS Table 1: the same evaluation budget
  (``pop`` new architectures per generation, uniform among those meeting the cheap budgets).

Every algorithm draws its random numbers from its own ``random_state`` (``numpy.random.Generator``
seeded by ``setup(..., seed=)``), so a run is reproducible and a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.algorithm import Algorithm
from pymoo.core.initialization import Initialization
from pymoo.core.population import Population
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

from hwnas.errors import HwnasError
from hwnas.search.operators import (
    CategoricalMutation,
    CategoricalSampling,
    GenesDuplicateElimination,
    UniformGroupCrossover,
    choices_of,
    crossover_genes,
    group_of_genes,
    mutate_genes,
    row_keys,
    sample_unique,
)

ALGORITHMS = ("nsga2", "evolution", "random")
#: rounds of child generation before an evolution iteration settles for fewer children.
MAX_CHILD_ROUNDS = 100


class SPOSEvolution(Algorithm):
    """SPOS Alg. 1: constrained evolution of the first objective with the top-k as parents.

    ``pop`` holds the top-k architectures seen so far (feasible first, then by objective); it is
    all the state the next iteration needs.
    """

    def __init__(self, pop_size: int = 50, top_k: int = 10, mutation_prob: float = 0.1,
                 n_crossover: int | None = None, n_mutation: int | None = None,
                 sampling: Any = None, seen: Any = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pop_size = int(pop_size)
        self.top_k = int(top_k)
        self.mutation_prob = float(mutation_prob)
        self.n_crossover = self.pop_size // 2 if n_crossover is None else int(n_crossover)
        self.n_mutation = self.pop_size - self.n_crossover if n_mutation is None else int(n_mutation)
        self.seen = seen
        self.initialization = Initialization(sampling or CategoricalSampling(),
                                             eliminate_duplicates=GenesDuplicateElimination(seen))

    def _initialize_infill(self):
        return self.initialization.do(self.problem, self.pop_size, algorithm=self,
                                      random_state=self.random_state)

    def _initialize_advance(self, infills=None, **kwargs):
        self.pop = self._top(infills)

    def _infill(self):
        X = self._children()
        if len(X) == 0:
            self.termination.force_termination = True
            return None
        return Population.new("X", X)

    def _advance(self, infills=None, **kwargs):
        self.pop = self._top(Population.merge(self.pop, infills) if infills is not None else self.pop)

    def _set_optimum(self):
        self.opt = self.pop[:1]

    def _top(self, pop: Population) -> Population:
        """Best ``top_k``: feasible first (by the first objective), then by constraint violation."""
        F, CV = pop.get("F"), pop.get("CV")
        order = np.lexsort((F[:, 0], CV[:, 0]))
        return pop[order[: self.top_k]]

    def _children(self) -> np.ndarray:
        problem, rng = self.problem, self.random_state
        parents = self.pop.get("X").astype(np.int64)
        choices = choices_of(problem)
        space = getattr(problem, "space", None)
        group_of = group_of_genes(None if space is None else [g.genes for g in space.groups],
                                  problem.n_var)
        check = getattr(problem, "cheap_feasible", None)
        if not (self.pop.get("CV")[:, 0] <= 0).any():
            check = None  # no feasible parent yet: any child may lower the violation (ranked by CV)
        taken = set(row_keys(parents))
        made: dict[str, list[np.ndarray]] = {"crossover": [], "mutation": []}
        want = {"crossover": self.n_crossover if len(parents) > 1 else 0,
                "mutation": self.n_mutation if len(parents) > 1 else self.pop_size}
        for round_ in range(MAX_CHILD_ROUNDS):
            if round_ == MAX_CHILD_ROUNDS // 2:
                # converged parents: crossover finds few unseen children; mutation makes up the rest
                want["mutation"] += want["crossover"] - len(made["crossover"])
                want["crossover"] = len(made["crossover"])
            for kind in ("crossover", "mutation"):
                need = want[kind] - len(made[kind])
                if need <= 0:
                    continue
                m = 2 * need
                if kind == "crossover":
                    pairs = rng.integers(0, len(parents), size=(m, 2))
                    cand = crossover_genes(rng, parents[pairs[:, 0]], parents[pairs[:, 1]], group_of)[0]
                else:
                    cand = mutate_genes(rng, parents[rng.integers(0, len(parents), size=m)], choices,
                                        self.mutation_prob)
                ok = np.ones(len(cand), dtype=bool)
                if self.seen is not None:
                    ok &= ~self.seen.contains(cand)
                if check is not None:
                    ok &= check(cand)
                for row, key, good in zip(cand, row_keys(cand), ok):
                    if good and key not in taken and len(made[kind]) < want[kind]:
                        taken.add(key)
                        made[kind].append(row)
            if all(len(made[k]) >= want[k] for k in made):
                break
        rows = made["crossover"] + made["mutation"]
        if not rows:
            return np.zeros((0, problem.n_var), dtype=np.int64)
        return np.stack(rows)


class RandomSearch(Algorithm):
    """Random search baseline: ``pop_size`` new uniform architectures per generation (meeting the
    cheap budgets when possible); ``pop`` keeps the best ``pop_size`` by rank and crowding."""

    def __init__(self, pop_size: int = 50, initial: np.ndarray | None = None, seen: Any = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.pop_size = int(pop_size)
        self.initial = initial
        self.seen = seen
        self.survival = RankAndCrowding()

    def _initialize_infill(self):
        X = sample_unique(self.problem, self.random_state, self.pop_size, initial=self.initial,
                          exclude=self.seen)
        return Population.new("X", X)

    def _initialize_advance(self, infills=None, **kwargs):
        self.pop = self._survive(infills)

    def _infill(self):
        X = sample_unique(self.problem, self.random_state, self.pop_size, exclude=self.seen)
        if len(X) == 0:
            self.termination.force_termination = True
            return None
        return Population.new("X", X)

    def _advance(self, infills=None, **kwargs):
        self.pop = self._survive(Population.merge(self.pop, infills) if infills is not None else self.pop)

    def _survive(self, pop: Population) -> Population:
        return self.survival.do(self.problem, pop, n_survive=min(self.pop_size, len(pop)),
                                random_state=self.random_state, algorithm=self)


def make_algorithm(name: str, problem: Any, *, pop: int = 50, initial: np.ndarray | None = None,
                   mutation_prob: float = 0.1, crossover_prob: float = 0.9, top_k: int = 10) -> Algorithm:
    """Build (not yet set up) the algorithm ``name`` for ``problem``.

    ``initial`` seeds the first population (a GreedyNAS candidate pool, best first; violators of
    the cheap budgets are ditched, the rest is filled uniformly). Duplicates, including
    architectures evaluated in earlier generations, are never evaluated again.
    """
    if pop < 2:
        raise HwnasError(f"population size must be >= 2, got {pop}")
    seen = getattr(problem, "history", None)
    initial = None if initial is None else problem.space.validate_matrix(initial)
    if name == "nsga2":
        return NSGA2(pop_size=pop, sampling=CategoricalSampling(initial),
                     crossover=UniformGroupCrossover(prob=crossover_prob),
                     mutation=CategoricalMutation(prob_var=mutation_prob),
                     eliminate_duplicates=GenesDuplicateElimination(seen), output=None)
    if name == "evolution":
        return SPOSEvolution(pop_size=pop, top_k=min(top_k, pop), mutation_prob=mutation_prob,
                             sampling=CategoricalSampling(initial), seen=seen)
    if name == "random":
        return RandomSearch(pop_size=pop, initial=initial, seen=seen)
    raise HwnasError(f"unknown search algorithm {name!r}; known: {', '.join(ALGORITHMS)}")


def initial_from_checkpoint(ckpt: dict[str, Any], space: Any) -> np.ndarray | None:
    """The GreedyNAS candidate pool stored in a supernet checkpoint, best (lowest loss) first.

    GreedyNAS Sec. 4.2 initialises the search with the pool's top paths. Reads the greedy
    sampler's state (``ckpt["sampler"]["pool"]["entries"]``: ``[genes, loss]`` pairs); also
    accepts a list of genes, of ``[genes, loss]`` or of ``{"genes", "loss"}``. ``None`` when the
    checkpoint has no pool (uniform-trained supernets).
    """
    def entries_of(obj: Any, depth: int = 0) -> list | None:
        if depth > 3 or obj is None:
            return None
        if isinstance(obj, dict):
            if isinstance(obj.get("entries"), list):
                return obj["entries"]
            for key in ("pool", "sampler", "state"):
                found = entries_of(obj.get(key), depth + 1)
                if found is not None:
                    return found
            return None
        return obj if isinstance(obj, list) else None

    entries = entries_of(ckpt.get("sampler")) or entries_of(ckpt.get("pool"))
    if not entries:
        return None
    rows: list[tuple[float, int, tuple[int, ...]]] = []
    for i, e in enumerate(entries):
        loss = 0.0
        if isinstance(e, dict):
            genes, loss = e.get("genes"), e.get("loss", 0.0)
        elif isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], (list, tuple)):
            genes, loss = e
        else:
            genes = e
        try:
            rows.append((float(loss), i, space.validate(genes)))
        except (HwnasError, TypeError, ValueError):
            raise HwnasError(f"the checkpoint's candidate pool entry {i} is not an architecture "
                             f"of space {space.name!r}") from None
    rows.sort()
    return np.asarray([g for _, _, g in rows], dtype=np.int64)
