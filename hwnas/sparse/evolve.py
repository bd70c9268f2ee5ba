"""Building the sparse space: evolutionary search with the early predictor per MACs bucket.

SparseNAS Sec. 5.3: "a uniform MACs interval sampling, which divides the basic search space into
groups of equal MACs and then samples the same number of high-quality networks from each group. In
practice, we sample five networks from each 1M MACs from 150M to 500M MACs by evolutionary search.
The population size is 50, and the number of iterations is 100." That is 350 buckets x 5 = 1750
members for OFA-MobileNetV3 at 224 px. The buckets here are scaled to the space at hand: the same
350 equal buckets over the MACs span of the space and resolution in use (default span: the
smallest to the largest architecture), 5 members each.

Each bucket keeps a population of up to ``pop`` architectures inside it, ranked by the predictor.
Every iteration the ``top_k`` best of each bucket breed ``pop`` children (half by uniform crossover
of gene groups, half by mutation with probability 0.1 per gene, as SPOS's evolution); a child joins
the bucket its MACs fall in (so neighbouring buckets feed each other and sparse ends of the range
fill up) and each bucket keeps its ``pop`` best distinct members. The initial populations come
from uniform samples plus samples tilted towards cheap and expensive options per block (the tails
of the MACs range are rare under uniform sampling). At the end each bucket contributes its
``per_bucket`` best: buckets no architecture reached are reported, not filled. Candidates are
canonical (:meth:`~hwnas.spaces.base.SearchSpace.canonical`): on an elastic-depth space
(``ofa-mbv3``, ``resnet48``) two gene tuples differing only in switched-off layers are one subnet
and one member.

All buckets evolve together in one vectorised pass per iteration (one predictor call for all
children), so the paper's 350 x 50 x 100 setting is 1.75M predictions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.search.operators import crossover_genes, group_of_genes, mutate_genes
from hwnas.spaces.sparse_set import SparseSet

#: SparseNAS Sec. 5.3: five networks per 1M MACs between 150M and 500M (350 buckets); population
#: 50, 100 iterations.
PAPER_BUCKETS = 350
PAPER_PER_BUCKET = 5
PAPER_POP = 50
PAPER_ITERATIONS = 100
#: SPOS evolution (also hwnas search's ``evolution``): parents, per-gene mutation probability
TOP_K = 10
MUTATION_PROB = 0.1
#: initial candidates per bucket (uniform + tilted)
INIT_PER_BUCKET = 40


@dataclass(frozen=True)
class BuildReport:
    members: int
    buckets: int
    filled: int
    empty: list[int]
    predictions: int
    seconds: float


def tilted_sample(space: Any, rng: np.random.Generator, n: int, beta: float, macs_tables: list[np.ndarray]
                  ) -> np.ndarray:
    """``n`` architectures whose block options are drawn with ``p ~ exp(beta * z(MACs))``."""
    out = np.zeros((n, space.num_genes), dtype=np.int64)
    for b, (grp, t) in enumerate(zip(space.groups, macs_tables)):
        z = (t - t.mean()) / (t.std() or 1.0)
        p = np.exp(beta * z)
        idx = rng.choice(len(p), size=n, p=p / p.sum())
        opts = np.asarray(space.group_options(b), dtype=np.int64)
        out[:, list(grp.genes)] = opts[idx]
    return out


def build_sparse_set(predictor: Any, *, buckets: int = PAPER_BUCKETS, per_bucket: int = PAPER_PER_BUCKET,
                     span: tuple[float, float] | None = None, pop: int = PAPER_POP,
                     iterations: int = PAPER_ITERATIONS, seed: int = 0, top_k: int = TOP_K,
                     mutation_prob: float = MUTATION_PROB, space: Any = None) -> tuple[SparseSet, BuildReport]:
    """The sparse set of the predictor's space (see module docstring)."""
    from hwnas.checkpoint import version_stamp
    from hwnas.cost import CostModel, op_costs

    checks = [(buckets >= 1, f"--buckets must be >= 1, got {buckets}"),
              (per_bucket >= 1, f"--per-bucket must be >= 1, got {per_bucket}"),
              (pop >= per_bucket, f"--pop must be >= --per-bucket ({per_bucket}), got {pop}"),
              (iterations >= 0, f"--iterations must be >= 0, got {iterations}"),
              (1 <= top_k, f"top_k must be >= 1, got {top_k}")]
    for ok, msg in checks:
        if not ok:
            raise HwnasError(msg)
    t0 = time.perf_counter()
    space = space if space is not None else predictor.space_obj()
    cm = CostModel(space)
    macs_of = lambda X: cm(X)["macs"]  # noqa: E731
    lo_all, hi_all = (float(v) for v in macs_of(np.array([space.smallest(), space.largest()])))
    lo, hi = (lo_all, hi_all) if span is None else (float(span[0]), float(span[1]))
    if not lo < hi:
        raise HwnasError(f"--range must be LO,HI with LO < HI, got {lo:g},{hi:g}")
    if hi < lo_all or lo > hi_all:
        raise HwnasError(f"--range {lo:,.0f}..{hi:,.0f} MACs misses space {space.name!r}, which spans "
                         f"{lo_all:,.0f}..{hi_all:,.0f} MACs")
    edges = np.linspace(lo, hi, buckets + 1)
    rng = np.random.default_rng(seed)
    groups = group_of_genes([g.genes for g in space.groups], space.num_genes)
    choices = np.asarray(space.choices, dtype=np.int64)
    tables = space.block_table(lambda op: op_costs(op).macs).tables
    n_pred = 0

    def bucket_of(m: np.ndarray) -> np.ndarray:
        b = np.searchsorted(edges, m, side="right") - 1
        b[m == hi] = buckets - 1
        return np.where((m >= lo) & (m <= hi), b, -1)

    def rate(X: np.ndarray) -> np.ndarray:
        nonlocal n_pred
        n_pred += len(X)
        return predictor.predict(X, space)

    # initial candidates: uniform and tilted towards both ends of the MACs range
    n_init = INIT_PER_BUCKET * buckets
    betas = np.linspace(-4.0, 4.0, 17)
    parts = [space.sample_many(rng, n_init)]
    parts += [tilted_sample(space, rng, max(8, n_init // len(betas)), b, tables) for b in betas]
    # canonical (switched-off layers' genes 0): distinct rows are distinct subnets (elastic depth)
    pool_X = np.unique(space.canonical_matrix(np.concatenate(parts)), axis=0)
    pool_m = macs_of(pool_X)
    pool_b = bucket_of(pool_m)
    keep = pool_b >= 0
    pool_X, pool_m, pool_b = pool_X[keep], pool_m[keep], pool_b[keep]
    pool_f = rate(pool_X)
    pops = _select(pool_X, pool_m, pool_f, pool_b, buckets, pop, rng_order=rng)

    for _ in range(iterations):
        parents = [(X[:top_k]) for X, _, _ in pops if len(X)]
        if not parents:
            break
        kids = []
        for P in parents:
            half = pop // 2
            a = P[rng.integers(len(P), size=(half + 1) // 2)]
            b = P[rng.integers(len(P), size=(half + 1) // 2)]
            c1, c2 = crossover_genes(rng, a, b, groups)
            kids += [c1, c2, mutate_genes(rng, P[rng.integers(len(P), size=pop - half)], choices, mutation_prob)]
        K = np.unique(space.canonical_matrix(np.concatenate(kids)), axis=0)
        km = macs_of(K)
        kb = bucket_of(km)
        ok = kb >= 0
        K, km, kb = K[ok], km[ok], kb[ok]
        kf = rate(K)
        allX = np.concatenate([K] + [X for X, _, _ in pops])
        allm = np.concatenate([km] + [m for _, m, _ in pops])
        allf = np.concatenate([kf] + [f for _, _, f in pops])
        allb = np.concatenate([kb] + [np.full(len(X), i) for i, (X, _, _) in enumerate(pops)])
        pops = _select(allX, allm, allf, allb, buckets, pop)

    rows, empty = [], []
    for i, (X, m, f) in enumerate(pops):
        if not len(X):
            empty.append(i)
        for j in range(min(per_bucket, len(X))):
            rows.append((X[j], m[j], f[j], i))
    if not rows:
        raise HwnasError(f"no architecture of space {space.name!r} falls in {lo:,.0f}..{hi:,.0f} MACs")
    sparse = SparseSet(
        space=space.config(), genes=np.stack([r[0] for r in rows]), macs=np.array([r[1] for r in rows]),
        predicted=np.array([r[2] for r in rows]), bucket=np.array([r[3] for r in rows]),
        meta={"buckets": {"cost": "macs", "lo": lo, "hi": hi, "count": buckets, "per_bucket": per_bucket,
                          "empty": empty},
              "search": {"pop": pop, "iterations": iterations, "top_k": top_k, "mutation_prob": mutation_prob,
                         "seed": seed, "predictions": n_pred},
              "predictor": {"file": None if predictor.path is None else str(predictor.path),
                            "kind": predictor.kind, "metrics": predictor.metrics},
              "versions": version_stamp()})
    report = BuildReport(len(rows), buckets, buckets - len(empty), empty, n_pred,
                         round(time.perf_counter() - t0, 3))
    return sparse, report


def _select(X: np.ndarray, m: np.ndarray, f: np.ndarray, b: np.ndarray, buckets: int, pop: int,
            rng_order: Any = None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per bucket the ``pop`` best distinct rows by ``f`` (descending); the initial population
    (``rng_order`` given) is a random ``pop`` of the candidates, not the best."""
    _, first = np.unique(X, axis=0, return_index=True)
    first.sort()
    X, m, f, b = X[first], m[first], f[first], b[first]
    out = []
    order_b = np.argsort(b, kind="stable")
    starts = np.searchsorted(b[order_b], np.arange(buckets + 1))
    for i in range(buckets):
        idx = order_b[starts[i]:starts[i + 1]]
        if rng_order is not None and len(idx) > pop:
            idx = rng_order.choice(idx, size=pop, replace=False)
        idx = idx[np.argsort(-f[idx], kind="stable")][:pop]
        out.append((X[idx], m[idx], f[idx]))
    return out
