"""Path samplers: the pluggable training strategies around the one supernet training loop.

The loop asks ``sampler.paths(step)`` for the architectures to train on each batch and calls
``sampler.end_epoch(epoch)`` after each epoch. A sampler owns its own seeded numpy RNG and no
global state, so every DDP rank built with the same seed returns the same paths; ``state_dict()`` /
``load_state_dict()`` make it part of the checkpoint (plain lists / dicts / ints / floats, loadable
with ``torch.load(weights_only=True)``).

Built in (registry + :func:`create_sampler` factory):

* ``uniform``: SPOS (seed 003, Sec. 3.2): one uniformly sampled path per batch.
* ``constrained``: SPOS "uniform constraint sampling": resample until the path's cost (MACs from
  :class:`~hwnas.cost.CostModel`, or a latency predictor ``cost_fn``) lies in ``[lo, hi]``.
* ``greedy``: GreedyNAS (seed 002, Alg. 1 and 2): multi-path sampling with rejection, a candidate
  pool with epsilon-sampling, uniform warm-up and the pool-based stopping principle.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hwnas.errors import HwnasError
from hwnas.spaces.base import SearchSpace

Genes = tuple[int, ...]
#: ``score_fn(paths) -> losses``: loss of each path on the fixed search-val scoring batch.
ScoreFn = Callable[[Sequence[Genes]], np.ndarray]
#: ``cost_fn(genes_matrix) -> costs``: one cost per row of an ``(n, num_genes)`` int array.
CostFn = Callable[[np.ndarray], np.ndarray]

_SAMPLERS: dict[str, type[PathSampler]] = {}


def register_sampler(cls: type[PathSampler]) -> type[PathSampler]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    _SAMPLERS[cls.name] = cls
    return cls


def sampler_names() -> list[str]:
    return list(_SAMPLERS)


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


def _rng_from_state(state: dict[str, Any]) -> np.random.Generator:
    bit_gen = getattr(np.random, state["bit_generator"])()
    bit_gen.state = state
    return np.random.Generator(bit_gen)


class PathSampler(ABC):
    """Base class: seeded RNG, per-epoch statistics, checkpointable state."""

    name: ClassVar[str] = "sampler"

    def __init__(self, space: SearchSpace, *, seed: int = 0) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.should_stop = False
        self.stop_reason = ""

    @classmethod
    def build(cls, space: SearchSpace, context: SamplerContext, **options: Any) -> PathSampler:
        """Construct from the loop's context; strategies needing callbacks override this."""
        return cls(space, seed=context.seed, **options)

    @abstractmethod
    def paths(self, step: int) -> list[Genes]:
        """Architectures to train on the batch of global step ``step`` (usually one)."""

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """Called after each epoch; returns statistics to log and may set ``should_stop``."""
        return {}

    def stats(self) -> dict[str, Any]:
        """Small dict of running statistics for the metrics log."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rng": _rng_state(self.rng), "should_stop": self.should_stop,
                "stop_reason": self.stop_reason, **self._extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise HwnasError(f"sampler state is for strategy {state.get('name')!r}, not {self.name!r}")
        self.rng = _rng_from_state(state["rng"])
        self.should_stop = bool(state.get("should_stop", False))
        self.stop_reason = str(state.get("stop_reason", ""))
        self._load_extra_state(state)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass


@register_sampler
class UniformSampler(PathSampler):
    """SPOS uniform sampling (seed 003, Sec. 3.2): one path drawn uniformly per batch."""

    name: ClassVar[str] = "uniform"

    def paths(self, step: int) -> list[Genes]:
        return [self.space.sample(self.rng)]


@register_sampler
class ConstrainedSampler(PathSampler):
    """SPOS uniform-constraint sampling (seed 003, Sec. 3.2): uniform paths whose cost is in range.

    The cost is MACs (:class:`~hwnas.cost.CostModel`) unless ``cost_fn`` (e.g. a latency
    predictor, ``cost_fn(genes_matrix) -> array``) is given. Candidates are drawn ``batch`` at a time
    and checked vectorised; the first in range is used, so the result is uniform over the paths in
    range. An empty range is an error that states the space's cost range.
    """

    name: ClassVar[str] = "constrained"
    batch: ClassVar[int] = 256
    max_draws: ClassVar[int] = 200_000

    def __init__(self, space: SearchSpace, *, seed: int = 0, cost_range: tuple[float, float],
                 cost_fn: CostFn | None = None, cost_name: str | None = None) -> None:
        super().__init__(space, seed=seed)
        lo, hi = (float(v) for v in cost_range)
        if lo > hi:
            raise HwnasError(f"cost range lower bound {lo:g} is above the upper bound {hi:g}")
        self.lo, self.hi = lo, hi
        if cost_fn is None:
            from hwnas.cost import CostModel

            model = CostModel(space)
            cost_fn = lambda m: model(m)["macs"]  # noqa: E731
            self.cost_name = cost_name or "MACs"
            # MACs are additive per block, so smallest()/largest() bound them exactly
            c_min, c_max = (float(v) for v in cost_fn(np.array([space.smallest(), space.largest()])))
            self._check_range(c_min, c_max, exact=True)
        else:
            self.cost_name = cost_name or "cost"
            probe = space.sample_many(np.random.default_rng(seed + 1), 4096)
            probe = np.concatenate([probe, np.array([space.smallest(), space.largest()])])
            c = np.asarray(cost_fn(probe), dtype=np.float64)
            if not ((c >= lo) & (c <= hi)).any():
                self._check_range(float(c.min()), float(c.max()), exact=False)
        self.cost_fn = cost_fn
        self.draws = 0
        self.accepted = 0

    @classmethod
    def build(cls, space: SearchSpace, context: SamplerContext, **options: Any) -> PathSampler:
        if options.get("cost_range") is None:
            raise HwnasError("strategy 'constrained' needs a MACs range: --macs-range LO,HI (e.g. 2M,4M)")
        return cls(space, seed=context.seed, cost_fn=context.cost_fn, **options)

    def _check_range(self, c_min: float, c_max: float, exact: bool) -> None:
        if self.hi < c_min or self.lo > c_max:
            how = "" if exact else " (over 4096 sampled paths)"
            raise HwnasError(
                f"no architecture of space {self.space.name!r} has {self.cost_name} in "
                f"[{self.lo:,.0f}, {self.hi:,.0f}]: the space spans {c_min:,.0f} .. {c_max:,.0f}{how}")

    def paths(self, step: int) -> list[Genes]:
        tried = 0
        while tried < self.max_draws:
            cand = self.space.sample_many(self.rng, self.batch)
            c = np.asarray(self.cost_fn(cand), dtype=np.float64)
            ok = np.flatnonzero((c >= self.lo) & (c <= self.hi))
            if ok.size:
                self.draws += int(ok[0]) + 1
                self.accepted += 1
                return [tuple(int(v) for v in cand[ok[0]])]
            tried += self.batch
            self.draws += self.batch
        raise HwnasError(
            f"no path with {self.cost_name} in [{self.lo:,.0f}, {self.hi:,.0f}] in {tried} uniform draws "
            f"of space {self.space.name!r}; widen the range")

    def stats(self) -> dict[str, Any]:
        return {"acceptance": round(self.accepted / self.draws, 4) if self.draws else None}

    def _extra_state(self) -> dict[str, Any]:
        return {"draws": self.draws, "accepted": self.accepted, "range": [self.lo, self.hi]}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.draws, self.accepted = int(state["draws"]), int(state["accepted"])


class CandidatePool:
    """GreedyNAS candidate pool (seed 002, Sec. 4.1.1): the ``capacity`` lowest-loss paths seen.

    A fixed-size queue ordered by loss, kept as a heap whose root is the *worst* kept path, so a
    better newcomer evicts it in O(log n). A path already in the pool takes its newest loss.
    Entries are kept in insertion order for uniform sampling ``U(P)``.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise HwnasError(f"pool size must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._loss: dict[Genes, float] = {}
        self._heap: list[tuple[float, Genes]] = []  # (-loss, genes): max-heap on loss

    def __len__(self) -> int:
        return len(self._loss)

    def __contains__(self, genes: Iterable[int]) -> bool:
        return tuple(genes) in self._loss

    def push(self, genes: Sequence[int], loss: float) -> bool:
        """Offer a path; returns True when it is in the pool afterwards."""
        g, loss = tuple(int(v) for v in genes), float(loss)
        if g in self._loss:
            self._loss[g] = loss
            self._heap = [(-v, k) for k, v in self._loss.items()]
            heapq.heapify(self._heap)
            return True
        if len(self._loss) < self.capacity:
            self._loss[g] = loss
            heapq.heappush(self._heap, (-loss, g))
            return True
        worst_neg, worst = self._heap[0]
        if loss >= -worst_neg:
            return False
        heapq.heapreplace(self._heap, (-loss, g))
        del self._loss[worst]
        self._loss[g] = loss
        return True

    def sample(self, rng: np.random.Generator) -> Genes:
        """A path drawn uniformly from the pool (``U(P)`` in GreedyNAS Eq. 8)."""
        keys = list(self._loss)
        return keys[int(rng.integers(len(keys)))]

    def genes(self) -> set[Genes]:
        return set(self._loss)

    def worst_loss(self) -> float | None:
        return -self._heap[0][0] if self._heap else None

    def sorted(self) -> list[tuple[Genes, float]]:
        """Entries best (lowest loss) first."""
        return sorted(self._loss.items(), key=lambda kv: (kv[1], kv[0]))

    def to_json(self) -> list[dict[str, Any]]:
        return [{"genes": list(g), "loss": v} for g, v in self.sorted()]

    def state_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "entries": [[list(g), v] for g, v in self._loss.items()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.capacity = int(state["capacity"])
        self._loss = {tuple(int(v) for v in g): float(v) for g, v in state["entries"]}
        self._heap = [(-v, k) for k, v in self._loss.items()]
        heapq.heapify(self._heap)


@register_sampler
class GreedySampler(PathSampler):
    """GreedyNAS greedy supernet training (seed 002, Alg. 1 and 2, Sec. 4.1).

    After ``warmup_steps`` of uniform sampling (Sec. 5.3.1: 10K iterations, so that the supernet
    ranks paths reliably), every ``k`` steps one filtering round samples ``m`` paths from
    ``(1 - eps) U(A) + eps U(P)`` (Eq. 8), scores them with ``score_fn`` (loss on a fixed
    search-val batch, eval mode; Sec. 3.2), keeps the ``k`` best, pushes them into the candidate
    pool and trains each of them on its own batch, one per step (Alg. 2, lines 5-10).
    ``eps`` rises linearly from 0 to ``eps_max`` = 0.8 over the greedy phase (Sec. 4.1.1, 5.1).
    Stopping principle (Sec. 4.1.2, Eq. 10): after each epoch, the pool's update frequency ``pi``
    (fraction of the pool's entries that were not in it at the previous epoch end) is compared
    with ``alpha`` = 0.08; ``pi <= alpha`` on a full pool sets ``should_stop``.
    Defaults m=10, k=5, pool 1000, eps 0.8, alpha 0.08 are the paper's (Sec. 5.1).
    """

    name: ClassVar[str] = "greedy"

    def __init__(self, space: SearchSpace, *, seed: int = 0, score_fn: ScoreFn, total_steps: int,
                 m: int = 10, k: int = 5, pool_size: int = 1000, eps_max: float = 0.8,
                 warmup_steps: int = 10_000, alpha: float = 0.08, early_stop: bool = True) -> None:
        super().__init__(space, seed=seed)
        if not 1 <= k <= m:
            raise HwnasError(f"greedy sampling needs 1 <= k <= m, got m={m}, k={k}")
        if not 0.0 <= eps_max <= 1.0:
            raise HwnasError(f"pool sampling probability must lie in [0, 1], got {eps_max}")
        if not 0.0 <= alpha <= 1.0:
            raise HwnasError(f"stopping tolerance alpha must lie in [0, 1], got {alpha}")
        self.score_fn = score_fn
        self.total_steps = int(total_steps)
        self.m, self.k = int(m), int(k)
        self.pool = CandidatePool(pool_size)
        self.eps_max = float(eps_max)
        self.warmup_steps = max(0, int(warmup_steps))
        self.alpha = float(alpha)
        self.early_stop = early_stop
        self.queue: list[Genes] = []
        self.snapshot: list[Genes] | None = None  # pool entries at the previous epoch end
        self.update_freq: list[float] = []
        self.rounds = 0
        self.from_pool = 0
        self.candidates = 0
        self.last_eps = 0.0

    @classmethod
    def build(cls, space: SearchSpace, context: SamplerContext, **options: Any) -> PathSampler:
        if context.score_fn is None:
            raise ValueError("the greedy sampler needs context.score_fn")
        return cls(space, seed=context.seed, score_fn=context.score_fn,
                   total_steps=context.total_steps, **options)

    def eps(self, step: int) -> float:
        """Pool sampling probability at ``step``: 0 until warm-up ends, then linear to ``eps_max``."""
        span = max(1, self.total_steps - self.warmup_steps)
        return self.eps_max * min(1.0, max(0.0, (step - self.warmup_steps) / span))

    def in_warmup(self, step: int) -> bool:
        return step < self.warmup_steps

    def paths(self, step: int) -> list[Genes]:
        if self.in_warmup(step):
            return [self.space.sample(self.rng)]
        if not self.queue:
            self._filter_round(step)
        return [self.queue.pop(0)]

    def _filter_round(self, step: int) -> None:
        """GreedyNAS Alg. 1 with pool: sample m, score, keep the k best, update the pool."""
        eps = self.last_eps = self.eps(step)
        cands: list[Genes] = []
        for _ in range(self.m):
            if len(self.pool) and self.rng.random() < eps:
                cands.append(self.pool.sample(self.rng))
                self.from_pool += 1
            else:
                cands.append(self.space.sample(self.rng))
        losses = np.asarray(self.score_fn(cands), dtype=np.float64)
        if losses.shape != (self.m,):
            raise ValueError(f"score_fn returned shape {losses.shape}, expected ({self.m},)")
        order = np.argsort(losses, kind="stable")[: self.k]
        for i in order:
            self.pool.push(cands[i], losses[i])
        self.queue = [cands[i] for i in order]
        self.rounds += 1
        self.candidates += self.m

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        out: dict[str, Any] = {"pool": len(self.pool)}
        if not self.rounds:  # still warming up: nothing to measure
            return out
        now = self.pool.genes()
        if self.snapshot is not None and now:
            pi = len(now - set(self.snapshot)) / len(now)
            self.update_freq.append(pi)
            out["pool_update_freq"] = round(pi, 4)
            full = len(now) == self.pool.capacity and len(self.snapshot) == self.pool.capacity
            if self.early_stop and full and pi <= self.alpha:
                self.should_stop = True
                self.stop_reason = (f"candidate pool update frequency {pi:.3f} <= alpha {self.alpha} "
                                    f"(GreedyNAS stopping principle)")
        self.snapshot = sorted(now)
        return out

    def stats(self) -> dict[str, Any]:
        return {"eps": round(self.last_eps, 4), "pool": len(self.pool), "rounds": self.rounds,
                "from_pool": self.from_pool, "pool_best": (self.pool.sorted()[0][1] if len(self.pool) else None)}

    def _extra_state(self) -> dict[str, Any]:
        return {"pool": self.pool.state_dict(), "queue": [list(g) for g in self.queue],
                "snapshot": None if self.snapshot is None else [list(g) for g in self.snapshot],
                "update_freq": list(self.update_freq), "rounds": self.rounds,
                "from_pool": self.from_pool, "candidates": self.candidates, "last_eps": self.last_eps}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool.load_state_dict(state["pool"])
        self.queue = [tuple(int(v) for v in g) for g in state["queue"]]
        snap = state.get("snapshot")
        self.snapshot = None if snap is None else [tuple(int(v) for v in g) for g in snap]
        self.update_freq = [float(v) for v in state["update_freq"]]
        self.rounds, self.from_pool = int(state["rounds"]), int(state["from_pool"])
        self.candidates, self.last_eps = int(state["candidates"]), float(state["last_eps"])

    def pool_json(self) -> dict[str, Any]:
        """The candidate pool as written to ``pool.json`` (best first)."""
        return {"space": self.space.config(), "strategy": self.name, "capacity": self.pool.capacity,
                "size": len(self.pool), "update_freq": self.update_freq,
                "note": "loss = cross-entropy on the search-val scoring batch when the path was last "
                        "scored (supernet weights of that moment)",
                "entries": self.pool.to_json()}


@dataclass(frozen=True)
class SamplerContext:
    """What the training loop hands every sampler: seed, schedule length and callbacks."""

    seed: int = 0
    total_steps: int = 1
    steps_per_epoch: int = 1
    score_fn: ScoreFn | None = None
    cost_fn: CostFn | None = None


def create_sampler(name: str, space: SearchSpace, context: SamplerContext | None = None,
                   **options: Any) -> PathSampler:
    """Build the registered sampler ``name``; ``options`` are its keyword settings (e.g. ``m``,
    ``k``, ``pool_size``, ``warmup_steps`` for greedy; ``cost_range`` for constrained)."""
    cls = _SAMPLERS.get(name)
    if cls is None:
        raise HwnasError(f"unknown strategy {name!r}; allowed: {', '.join(sampler_names())}")
    return cls.build(space, context or SamplerContext(), **options)
