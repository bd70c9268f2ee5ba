"""pymoo operators for categorical genes: sampling, uniform crossover, mutation, duplicate elimination.

Genes are *categorical*: option 3 of a layer is not "between" options 2 and 4 (``k5e3`` sits between
``k3e6`` and ``k5e6`` only by the accident of an enumeration order). The usual real-coded operators
(SBX crossover, polynomial mutation) followed by rounding therefore do not fit: they draw children
near the parents *in index space*, so neighbouring indices are favoured, the first and last options
are hit less often after clipping and rounding (the boundaries absorb only half a rounding bin), and
a "small" mutation can never jump from option 0 to option 6. The operators here treat every other
option of a gene as equally near:

* :class:`CategoricalSampling`: uniform per gene, optionally seeded with given rows (a GreedyNAS
  candidate pool); rows violating the cheap budgets are regenerated when the problem can check them
  (SPOS ``Initialize_population(P, C)``, K-shot "within the target FLOPs").
* :class:`UniformGroupCrossover`: each gene group (``space.groups``: one searchable block, e.g. SPOS
  block type + channel scale) comes from either parent with probability 1/2.
* :class:`CategoricalMutation`: each gene, with probability ``prob_var`` (SPOS Alg. 1: 0.1), is
  resampled uniformly among its *other* options.
* :class:`GenesDuplicateElimination`: exact duplicates by genes, also against every architecture
  already evaluated (an evaluation is never spent twice, as in the SPOS search code's visited set).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.sampling import Sampling

#: rounds of rejection sampling before giving up on the cheap budgets (rows are then kept as is).
MAX_SAMPLING_ROUNDS = 200


def choices_of(problem: Any) -> np.ndarray:
    """Options per gene from a problem with integer bounds ``xl = 0``, ``xu = choices - 1``."""
    return np.asarray(problem.xu, dtype=np.int64) + 1


def row_keys(X: np.ndarray) -> list[bytes]:
    """Hashable key per row of an integer gene matrix."""
    X = np.ascontiguousarray(np.asarray(X, dtype=np.int64))
    return [r.tobytes() for r in X]


def uniform_genes(rng: np.random.Generator, choices: np.ndarray, n: int) -> np.ndarray:
    """``n`` uniform architectures: gene ``i`` uniform in ``range(choices[i])``."""
    return rng.integers(0, choices, size=(n, len(choices))).astype(np.int64)


def mutate_genes(rng: np.random.Generator, X: np.ndarray, choices: np.ndarray,
                 prob: float) -> np.ndarray:
    """Each gene with probability ``prob`` moves to a uniformly chosen *other* option."""
    X = np.asarray(X, dtype=np.int64)
    hit = rng.random(X.shape) < prob
    hit &= choices[None, :] > 1
    shift = rng.integers(1, np.maximum(choices, 2), size=X.shape)
    return np.where(hit, (X + shift) % choices[None, :], X)


def group_of_genes(groups: Sequence[Sequence[int]] | None, n_var: int) -> np.ndarray:
    """Group index of each gene (one group per gene when ``groups`` is None)."""
    if groups is None:
        return np.arange(n_var)
    out = np.full(n_var, -1, dtype=np.int64)
    for g, genes in enumerate(groups):
        out[list(genes)] = g
    missing = np.flatnonzero(out < 0)
    out[missing] = len(groups) + np.arange(len(missing))  # ungrouped genes: their own group
    return out


def crossover_genes(rng: np.random.Generator, a: np.ndarray, b: np.ndarray,
                    group_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uniform crossover by gene group: two complementary children per pair of parents."""
    n_groups = int(group_of.max()) + 1
    take_a = (rng.random((a.shape[0], n_groups)) < 0.5)[:, group_of]
    return np.where(take_a, a, b), np.where(take_a, b, a)


def _space_groups(problem: Any) -> list[tuple[int, ...]] | None:
    space = getattr(problem, "space", None)
    return None if space is None else [g.genes for g in space.groups]


def sample_unique(problem: Any, rng: np.random.Generator, n: int, *, initial: np.ndarray | None = None,
                  exclude: Any = None, feasible_only: bool = True) -> np.ndarray:
    """Up to ``n`` distinct architectures: the rows of ``initial`` first, then uniform ones.

    Rows already in ``exclude`` (anything with ``contains(X) -> bool mask``, e.g. the evaluation
    history) are skipped. With ``feasible_only`` and a problem exposing ``cheap_feasible(X)``, rows
    violating the cheap budgets are skipped too and regenerated for up to
    :data:`MAX_SAMPLING_ROUNDS` rounds. Budgets too tight for that are met by a random walk inside
    the feasible region from ``problem.feasible_seeds()`` (the architectures minimising each
    budgeted metric); only if that fails too is the rest filled unconstrained, and the search
    drives the violation down.
    """
    choices = choices_of(problem)
    n = min(int(n), int(np.prod(choices.astype(object))))  # tiny spaces
    check = getattr(problem, "cheap_feasible", None) if feasible_only else None
    seen: set[bytes] = set()
    rows: list[np.ndarray] = []

    def take(X: np.ndarray, constrained: bool) -> None:
        ok = np.ones(len(X), dtype=bool)
        if exclude is not None and len(X):
            ok &= ~exclude.contains(X)
        if constrained and check is not None and len(X):
            ok &= check(X)
        for row, key, good in zip(X, row_keys(X), ok):
            if good and key not in seen and len(rows) < n:
                seen.add(key)
                rows.append(row)

    if initial is not None and len(initial):
        take(np.asarray(initial, dtype=np.int64), True)
    batch = max(4 * n, 256)
    for _ in range(MAX_SAMPLING_ROUNDS):
        if len(rows) >= n:
            break
        take(uniform_genes(rng, choices, batch), True)
    seeds = getattr(problem, "feasible_seeds", None)
    if len(rows) < n and check is not None and seeds is not None and len(walkers := seeds()):
        # budgets too tight for rejection: a random walk inside the feasible region, from the
        # architectures that minimise each budgeted metric (each step mutates ~20 % of the genes)
        walkers = np.vstack([walkers, *rows]) if rows else walkers
        for _ in range(MAX_SAMPLING_ROUNDS):
            if len(rows) >= n:
                break
            cand = mutate_genes(rng, walkers[rng.integers(0, len(walkers), size=batch)], choices, 0.2)
            good = check(cand)
            take(cand[good], True)
            walkers = np.vstack([walkers, cand[good]])[-4 * batch:]
    for _ in range(MAX_SAMPLING_ROUNDS):
        if len(rows) >= n:
            break
        take(uniform_genes(rng, choices, batch), False)
    if not rows:
        return np.zeros((0, len(choices)), dtype=np.int64)
    return np.stack(rows).astype(np.int64)


class CategoricalSampling(Sampling):
    """Uniform sampling per gene, after the rows of ``initial`` (e.g. a GreedyNAS candidate pool).

    Rows are unique; rows violating the cheap budgets are dropped (also from ``initial``:
    GreedyNAS ditches violators) and regenerated, see :func:`sample_unique`.
    """

    def __init__(self, initial: np.ndarray | None = None, feasible_only: bool = True) -> None:
        super().__init__()
        self.initial = None if initial is None else np.asarray(initial, dtype=np.int64)
        self.feasible_only = feasible_only

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        return sample_unique(problem, random_state, n_samples, initial=self.initial,
                             feasible_only=self.feasible_only)


class UniformGroupCrossover(Crossover):
    """Two parents -> two complementary children; each gene group comes from either parent (p=1/2).

    ``groups`` defaults to the problem space's gene groups (``space.groups``), so genes that
    together choose one block (SPOS block type + channel scale) travel together.
    """

    def __init__(self, groups: Sequence[Sequence[int]] | None = None, prob: float = 0.9,
                 **kwargs) -> None:
        super().__init__(2, 2, prob=prob, **kwargs)
        self.groups = None if groups is None else [tuple(g) for g in groups]

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        groups = self.groups if self.groups is not None else _space_groups(problem)
        group_of = group_of_genes(groups, problem.n_var)
        a, b = np.asarray(X[0], dtype=np.int64), np.asarray(X[1], dtype=np.int64)
        c1, c2 = crossover_genes(random_state, a, b, group_of)
        return np.stack([c1, c2])


class CategoricalMutation(Mutation):
    """Each gene, with probability ``prob_var`` (SPOS: 0.1), becomes a uniformly chosen other option."""

    def __init__(self, prob_var: float = 0.1, **kwargs) -> None:
        super().__init__(prob=1.0, **kwargs)
        self.gene_prob = float(prob_var)

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        return mutate_genes(random_state, X, choices_of(problem), self.gene_prob)


class GenesDuplicateElimination(DuplicateElimination):
    """Exact duplicates by genes: within the offspring, against the population, and (when
    ``archive`` is given: any object with ``contains(X) -> bool mask``) against every architecture
    evaluated so far."""

    def __init__(self, archive: Any = None) -> None:
        super().__init__()
        self.archive = archive

    def do(self, pop, *args, return_indices=False, to_itself=True):
        if self.archive is not None and len(pop):
            pop = pop[~self.archive.contains(pop.get("X"))]
        return super().do(pop, *args, return_indices=return_indices, to_itself=to_itself)

    def _do(self, pop, other, is_duplicate):
        keys = row_keys(pop.get("X"))
        if other is None:
            seen: set[bytes] = set()
            for i, k in enumerate(keys):
                if k in seen:
                    is_duplicate[i] = True
                seen.add(k)
        else:
            others = set(row_keys(other.get("X")))
            for i, k in enumerate(keys):
                if k in others:
                    is_duplicate[i] = True
        return is_duplicate
