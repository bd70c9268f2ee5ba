"""Is the search any good? Compare its front with the exhaustive one on a space small enough to enumerate.

* :class:`SubSpace`: a view of a registered space with only some gene groups free and the others
  fixed (e.g. the first six MBConv layers of ``mbv2``: 6 x 7^3 x 6 x 7 = 86,436 architectures).
  It keeps the ``SearchSpace`` contract (its op list is the parent's), so the cost model, the
  problem and the operators work on it unchanged.
* Synthetic, deterministic objectives for tests and benchmarks (clearly not measurements):
  :func:`synthetic_error_objective` (an accuracy proxy that mostly improves with capacity but not
  monotonically: a fixed random score per (block, option), summed) and
  :func:`synthetic_latency_predictor` (a random per-op cost keyed by the latency-table key, summed
  over ``space.block_table`` like a real table).
* :func:`search_quality`: exhaustive Pareto front vs the front of a search with the default
  budget (NSGA-II, 50 x 20 = 1000 evaluations), scored by the hypervolume ratio (pymoo ``HV``) in
  objectives normalised to the exhaustive front's ideal / nadir, reference point 1.1 (just beyond
  the nadir).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from hwnas.cost import CostModel, op_costs
from hwnas.errors import HwnasError
from hwnas.search.objectives import Objective, macs_objective
from hwnas.search.problem import ArchProblem
from hwnas.search.run import nondominated_mask, run_search
from hwnas.spaces.base import BlockTable, GeneGroup, OpSpec, SearchSpace


@dataclass(frozen=True)
class SubSpace(SearchSpace):
    """``parent`` with only the gene groups ``free`` searchable; the others keep their ``base`` genes."""

    name: ClassVar[str] = "subspace"
    parent: SearchSpace | None = None
    free: tuple[int, ...] = ()
    base: tuple[int, ...] = ()

    @classmethod
    def of(cls, parent: SearchSpace, free: Sequence[int], base: Sequence[int] | None = None) -> SubSpace:
        free = tuple(sorted(int(b) for b in free))
        if not free or free[0] < 0 or free[-1] >= len(parent.groups):
            raise HwnasError(f"free blocks {free} out of range 0..{len(parent.groups) - 1}")
        if parent.shared_genes():
            raise HwnasError(f"space {parent.name!r} shares depth genes between blocks; "
                             "a subspace of chosen blocks needs blocks with their own genes")
        base = parent.validate(parent.smallest_valid() if base is None else base)
        return cls(width=parent.width, resolution=parent.resolution, num_classes=parent.num_classes,
                   in_channels=parent.in_channels, parent=parent, free=free, base=base)

    def _cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def _parent_genes(self) -> tuple[int, ...]:
        groups = self.parent.groups
        return self._cached("parent_genes", lambda: tuple(i for b in self.free for i in groups[b].genes))

    @property
    def choices(self) -> tuple[int, ...]:
        return self._cached("choices", lambda: tuple(self.parent.choices[i] for i in self._parent_genes))

    @property
    def groups(self) -> tuple[GeneGroup, ...]:
        def make() -> tuple[GeneGroup, ...]:
            out, k = [], 0
            for b in self.free:
                grp = self.parent.groups[b]
                out.append(GeneGroup(grp.name, tuple(range(k, k + len(grp.genes)))))
                k += len(grp.genes)
            return tuple(out)

        return self._cached("groups", make)

    def expand(self, genes: Sequence[int]) -> tuple[int, ...]:
        """The parent's genes of a sub-architecture."""
        full = list(self.base)
        for i, v in zip(self._parent_genes, genes):
            full[i] = int(v)
        return tuple(full)

    def decode(self, genes: Sequence[int]) -> Any:
        return self.parent.decode(self.expand(self.validate(genes)))

    def encode(self, cfg: Any) -> tuple[int, ...]:
        full = self.parent.encode(cfg)
        fixed = set(range(self.parent.num_genes)) - set(self._parent_genes)
        bad = [i for i in sorted(fixed) if full[i] != self.base[i]]
        if bad:
            raise HwnasError(f"gene {bad[0]} is fixed to {self.base[bad[0]]} in this subspace")
        return tuple(full[i] for i in self._parent_genes)

    def gene_labels(self, index: int) -> tuple[str, ...]:
        return self.parent.gene_labels(self._parent_genes[index])

    def _layers(self, genes: tuple[int, ...], resolution: int) -> list[OpSpec]:
        block = {b: k for k, b in enumerate(self.free)}
        return [replace(op, block=block.get(op.block, -1))
                for op in self.parent.layers(self.expand(genes), resolution)]

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "parent": self.parent.config(), "free": list(self.free),
                "base": list(self.base)}

    def all_genes(self) -> np.ndarray:
        """Every architecture, ``(size, num_genes)`` (only for small subspaces)."""
        if self.size() > 2_000_000:
            raise HwnasError(f"subspace has {self.size()} architectures: too many to enumerate")
        return np.array(list(itertools.product(*(range(c) for c in self.choices))), dtype=np.int64)


# ---- synthetic objectives ---------------------------------------------------------------------------
def _seeded_uniform(key: str, seed: int) -> float:
    """A deterministic U(0, 1) draw per (key, seed), independent of evaluation order."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def synthetic_latency_predictor(space: SearchSpace, seed: int = 0,
                                resolution: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """SYNTHETIC latency (ms), a stand-in until real device tables exist: per op
    ``0.02 ms + MACs / (0.5..2 GMAC/s, random per latency key)``, summed per block like a table."""
    def op_ms(op: OpSpec) -> float:
        rate = 0.5e9 * 4 ** _seeded_uniform(op.latency_key(), seed)  # 0.5 .. 2 GMAC/s
        return 0.02 + 1e3 * op_costs(op).macs / rate

    table = space.block_table(op_ms, resolution)

    def predict(genes_matrix: np.ndarray) -> np.ndarray:
        return table.gather(space.group_index(genes_matrix))

    return predict


def synthetic_error_objective(space: SearchSpace, seed: int = 0, noise: float = 0.6) -> Objective:
    """SYNTHETIC top-1 error proxy (%), from 45 (weakest) to 15 (strongest): an affine map of
    ``sum_b score[b, option]``, ``score = log1p(block MACs / 1e3) x U(1 - noise, 1 + noise)`` fixed
    per (seed, block, option).

    More capacity mostly lowers the error, but the random factor makes some options cost more and
    help less, so error and MACs form a real, non-trivial trade-off.
    """
    macs = space.block_table(lambda op: op_costs(op).macs)
    rng = np.random.default_rng(seed)
    scores = BlockTable(0.0, [np.log1p(t / 1e3) * rng.uniform(1 - noise, 1 + noise, size=len(t))
                              for t in macs.tables])
    lo = sum(float(s.min()) for s in scores.tables)
    hi = sum(float(s.max()) for s in scores.tables)
    span = hi - lo if hi > lo else 1.0

    def fn(genes_matrix: np.ndarray) -> np.ndarray:
        total = scores.gather(space.group_index(genes_matrix))
        return 45.0 - 30.0 * (total - lo) / span

    return Objective("error", "%", fn, block_additive=True)


def reduced_mbv2(n_free: int = 6, **space_kw: Any) -> SubSpace:
    """``mbv2`` with only its first ``n_free`` layers searchable (6 -> 86,436 architectures)."""
    from hwnas.spaces import create_space

    parent = create_space("mbv2", **space_kw)
    return SubSpace.of(parent, range(n_free), parent.smallest())


# ---- the check ---------------------------------------------------------------------------------------
@dataclass
class QualityReport:
    seed: int
    space_size: int
    exhaustive_front: np.ndarray
    search_front: np.ndarray
    hv_exhaustive: float
    hv_search: float
    n_evaluated: int
    extra: dict = field(default_factory=dict)

    @property
    def hv_ratio(self) -> float:
        return self.hv_search / self.hv_exhaustive


def hypervolume_ratio(front: np.ndarray, reference_front: np.ndarray, margin: float = 0.1) -> tuple[float, float]:
    """(HV of ``front``, HV of ``reference_front``) in objectives normalised to the reference front's
    ideal (0) and nadir (1), with the reference point ``1 + margin`` (just beyond the nadir)."""
    from pymoo.indicators.hv import HV

    ideal, nadir = reference_front.min(axis=0), reference_front.max(axis=0)
    scale = np.where(nadir > ideal, nadir - ideal, 1.0)
    ind = HV(ref_point=np.full(reference_front.shape[1], 1.0 + margin))
    return (float(ind.do((front - ideal) / scale)), float(ind.do((reference_front - ideal) / scale)))


def search_quality(seed: int = 0, *, n_free: int = 6, algorithm: str = "nsga2", pop: int = 50,
                   gens: int = 20, error_seed: int = 0) -> QualityReport:
    """NSGA-II front vs the exhaustive front of :func:`reduced_mbv2` on (synthetic error, MACs)."""
    space = reduced_mbv2(n_free)
    cm = CostModel(space)
    objectives = [synthetic_error_objective(space, error_seed), macs_objective(cm)]
    exhaustive = ArchProblem(space, objectives, cost_model=cm)
    values, _ = exhaustive.compute_metrics(space.all_genes())
    F_all = values[:, [exhaustive.metric_names.index(o.name) for o in objectives]]
    F_star = F_all[nondominated_mask(F_all)]
    problem = ArchProblem(space, objectives, cost_model=cm)
    result = run_search(problem, algorithm, pop=pop, gens=gens, seed=seed, progress=False)
    hv_s, hv_x = hypervolume_ratio(result.pareto_F, F_star)
    return QualityReport(seed=seed, space_size=space.size(), exhaustive_front=F_star,
                         search_front=result.pareto_F, hv_exhaustive=hv_x, hv_search=hv_s,
                         n_evaluated=len(problem.history))


@dataclass
class ConstrainedReport:
    """Best first objective under a MACs budget: the search's vs the exhaustive optimum."""

    seed: int
    algorithm: str
    budget: float
    optimum: float
    found: float
    n_better: int  # feasible architectures of the space strictly better than the one found
    n_feasible: int
    n_evaluated: int

    @property
    def top_fraction(self) -> float:
        """Share of the feasible space at least as good as the found architecture (smaller is better)."""
        return (self.n_better + 1) / self.n_feasible


def constrained_quality(seed: int = 0, *, algorithm: str = "evolution", n_free: int = 6,
                        budget_quantile: float = 0.3, pop: int = 50, gens: int = 20,
                        error_seed: int = 0) -> ConstrainedReport:
    """Minimise the synthetic error of :func:`reduced_mbv2` under a MACs budget (the
    ``budget_quantile`` of the space's MACs) and compare with the exhaustive optimum: the check
    for single-objective search (SPOS evolution) and its random baseline."""
    space = reduced_mbv2(n_free)
    cm = CostModel(space)
    err = synthetic_error_objective(space, error_seed)
    X = space.all_genes()
    e_all, m_all = err(X), cm(X)["macs"]
    budget = float(np.quantile(m_all, budget_quantile))
    feasible = m_all <= budget
    problem = ArchProblem(space, [err, macs_objective(cm, budget)], cost_model=cm)
    result = run_search(problem, algorithm, pop=pop, gens=gens, seed=seed, progress=False)
    found = float(result.metrics(result.best_index)["error"])
    return ConstrainedReport(seed=seed, algorithm=algorithm, budget=budget,
                             optimum=float(e_all[feasible].min()), found=found,
                             n_better=int((e_all[feasible] < found - 1e-12).sum()),
                             n_feasible=int(feasible.sum()), n_evaluated=len(problem.history))
