"""``greedy``: GreedyNAS greedy supernet training (GreedyNAS Alg. 1 and 2, Sec. 4.1).

After ``warmup_steps`` of uniform sampling (Sec. 5.3.1: 10K iterations, so that the supernet ranks
paths reliably), every ``k`` steps one filtering round samples ``m`` paths from
``(1 - eps) U(A) + eps U(P)`` (Eq. 8), scores them (loss on a fixed search-val batch, eval mode;
Sec. 3.2 and 5.1: 1000 validation images), keeps the ``k`` best, pushes them into the candidate
pool and trains each of them on its own batch, one per step (Alg. 2, lines 5-10). ``eps`` rises
linearly from 0 to ``eps_max`` = 0.8 (Sec. 4.1.1, 5.1) over the first ``eps_ramp`` of the steps
after the warm-up (the paper does not give the ramp's length).

Stopping principle (Sec. 4.1.2, Eq. 10): after each epoch the pool's update frequency ``pi`` (the
fraction of its entries that were not in it at the previous epoch end) is compared with ``alpha``
= 0.08. The rule only fires once the exploration schedule has run (``eps`` at ``eps_max``) and the
pool was full at both epoch ends; a run too short for that says so at its start and trains all
its epochs. The pool holds 1000 paths in the paper, "the amount of paths involved in one epoch"
(Sec. 5.1: about 0.8 of ImageNet's 1251 steps per epoch at batch 1024); by default it is the
dataset recipe's size, else that proportion of the run's steps per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.train.recipes import PAPER_POOL_SIZE, PAPER_STEPS_PER_EPOCH
from hwnas.train.strategies.base import Genes, PathRun, RunContext, Strategy
from hwnas.train.strategies.options import StrategyOptions
from hwnas.train.strategies.pool import CandidatePool
from hwnas.train.strategies.registry import register_strategy

#: GreedyNAS Sec. 5.3.1: warm-up "by uniform sampling for 10K iterations".
PAPER_WARMUP_STEPS = 10_000
#: For short runs the warm-up is capped at this fraction of all steps: the paper's 10K iterations
#: are ~8 of the ~60 ImageNet epochs its supernet trains (about 1/7 of the run).
WARMUP_FRACTION_CAP = 0.15
#: ``score_fn(paths) -> losses``: loss of each path on the fixed search-val scoring batch.
ScoreFn = Callable[[Sequence[Genes]], np.ndarray]


@dataclass(frozen=True)
class GreedyOptions(StrategyOptions):
    """GreedyNAS Sec. 5.1 defaults: m=10 paths sampled, k=5 kept, 1000 scoring images, eps 0 -> 0.8,
    alpha 0.08; ``pool_size`` (default: recipe, else 0.8 x steps per epoch, at most 1000),
    ``warmup_steps`` (default min(10K, 15 % of steps); < 1: a fraction of all steps), ``eps_ramp``
    (fraction of the post-warm-up steps over which eps rises), ``early_stop`` (stopping principle)."""

    MUTABLE_ON_RESUME: ClassVar[frozenset[str]] = frozenset({"early_stop"})

    m: int = 10
    k: int = 5
    pool_size: int | None = None
    score_batch: int = 1000
    eps_max: float = 0.8
    eps_ramp: float = 0.5
    warmup_steps: float | None = None
    alpha: float = 0.08
    early_stop: bool = True

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.m >= 1, f"m must be >= 1, got {self.m}"),
            (1 <= self.k <= self.m, f"k must lie in 1..m ({self.m}), got {self.k}"),
            (self.pool_size is None or self.pool_size >= 1, f"pool_size must be >= 1, got {self.pool_size}"),
            (self.score_batch >= 1, f"score_batch must be >= 1, got {self.score_batch}"),
            (0.0 <= self.eps_max <= 1.0, f"eps_max must lie in [0, 1], got {self.eps_max}"),
            (0.0 < self.eps_ramp <= 1.0, f"eps_ramp must lie in (0, 1], got {self.eps_ramp}"),
            (self.warmup_steps is None or self.warmup_steps >= 0,
             f"warmup_steps must be >= 0, got {self.warmup_steps}"),
            (0.0 <= self.alpha <= 1.0, f"alpha must lie in [0, 1], got {self.alpha}"),
        ]

    def resolved_warmup_steps(self, total_steps: int) -> int:
        """The paper's 10K iterations, capped at 15 % of short runs; a value < 1 is a fraction."""
        if self.warmup_steps is None:
            return int(min(PAPER_WARMUP_STEPS, round(WARMUP_FRACTION_CAP * total_steps)))
        if self.warmup_steps < 1:
            return int(round(self.warmup_steps * total_steps))
        return int(self.warmup_steps)

    def resolved_pool_size(self, steps_per_epoch: int, recipe_pool_size: int | None = None) -> int:
        """Explicit ``pool_size``, else the recipe's, else the paper's 1000 scaled to this run's
        steps per epoch (1000 of 1251), at least ``k`` and at most 1000."""
        if self.pool_size is not None:
            return self.pool_size
        if recipe_pool_size is not None:
            return recipe_pool_size
        return max(self.k, min(PAPER_POOL_SIZE, round(PAPER_POOL_SIZE * steps_per_epoch / PAPER_STEPS_PER_EPOCH)))


def scoring_batch(run: RunContext, score_batch: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The fixed search-val scoring images (GreedyNAS Sec. 5.1: 1000 validation images), this
    rank's shard on its device, and the total count over all ranks."""
    from hwnas.data import take_batches

    info = run.info
    n = min(score_batch, len(run.data.search_val))
    x, y = take_batches(run.data.search_val, batch_size=n, max_batches=1, seed=run.seed + 7919)[0]
    return x[info.rank::info.world].to(info.device), y[info.rank::info.world].to(info.device), n


def make_score_fn(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, n: int, info: Any,
                  batch_size: int, use_amp: bool) -> ScoreFn:
    """GreedyNAS path scoring (Sec. 3.2): mean cross-entropy of each path on the fixed scoring
    batch (``n`` images over all ranks), supernet in eval mode. Each DDP rank scores its shard;
    sums are all-reduced, so all ranks rank the paths identically."""
    from hwnas.train import distributed as D
    from hwnas.train.loop import autocast

    dev = info.device

    def score(paths: Sequence[Genes]) -> np.ndarray:
        uniq = list(dict.fromkeys(tuple(p) for p in paths))
        sums = torch.zeros(len(uniq), dtype=torch.float64, device=dev)
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad(), autocast(dev, use_amp):
                for j, g in enumerate(uniq):
                    for i in range(0, images.shape[0], batch_size):
                        out = net(images[i:i + batch_size], g)
                        sums[j] += F.cross_entropy(out.float(), labels[i:i + batch_size],
                                                   reduction="sum").double()
        finally:
            net.train(was_training)
        D.all_reduce_sum(info, sums)
        by_path = dict(zip(uniq, (sums / n).cpu().tolist()))
        return np.array([by_path[tuple(p)] for p in paths], dtype=np.float64)

    return score


@register_strategy
class GreedyStrategy(Strategy):
    """GreedyNAS: multi-path sampling with rejection, candidate pool, stopping principle."""

    name: ClassVar[str] = "greedy"
    summary: ClassVar[str] = ("sample m paths, train the k best by search-val loss, candidate pool "
                              "with eps-sampling and the pool stopping rule (GreedyNAS Sec. 4)")
    Options: ClassVar[type[StrategyOptions]] = GreedyOptions

    def __init__(self, options: GreedyOptions, run: RunContext, score_fn: ScoreFn | None = None) -> None:
        super().__init__(options, run)
        o = options
        if score_fn is None:
            images, labels, n = scoring_batch(run, o.score_batch)
            score_fn = make_score_fn(run.supernet, images, labels, n, run.info, run.batch_size, run.use_amp)
        self.score_fn = score_fn
        self.total_steps = run.total_steps
        self.steps_per_epoch = run.steps_per_epoch
        self.epochs = run.epochs
        self.m, self.k = o.m, o.k
        self.pool = CandidatePool(o.resolved_pool_size(run.steps_per_epoch, run.recipe_pool_size))
        self.eps_max, self.alpha, self.early_stop = o.eps_max, o.alpha, o.early_stop
        self.warmup_steps = max(0, o.resolved_warmup_steps(self.total_steps))
        self.eps_span = max(1, round(o.eps_ramp * (self.total_steps - self.warmup_steps)))
        self.queue: list[Genes] = []
        self.snapshot: list[Genes] | None = None  # pool entries at the previous epoch end
        self.update_freq: list[float] = []
        self.rounds = 0
        self.from_pool = 0
        self.candidates = 0
        self.last_eps = 0.0
        self.steps_seen = 0

    # ---- schedule ------------------------------------------------------------------------------
    def eps(self, step: int) -> float:
        """Pool sampling probability at ``step``: 0 until warm-up ends, then linear to ``eps_max``."""
        return self.eps_max * min(1.0, max(0.0, (step - self.warmup_steps) / self.eps_span))

    @property
    def ramp_end(self) -> int:
        """The step at which ``eps`` reaches ``eps_max`` (the exploration schedule has run)."""
        return self.warmup_steps + self.eps_span

    def earliest_stop_epoch(self) -> int:
        """First epoch end (1-based) at which the stopping rule can fire: the ramp is done and the
        pool (filled by about one path per greedy step) was full at the previous epoch end too."""
        pe = max(1, self.steps_per_epoch)
        fill = self.warmup_steps + self.pool.capacity
        return max(math.ceil(self.ramp_end / pe), math.ceil(fill / pe) + 1)

    def in_warmup(self, step: int) -> bool:
        return step < self.warmup_steps

    # ---- per step ------------------------------------------------------------------------------
    def paths(self, step: int) -> list[PathRun]:
        self.steps_seen = step + 1
        if self.in_warmup(step):
            return [PathRun(self.space.sample(self.rng))]
        if not self.queue:
            self._filter_round(step)
        return [PathRun(self.queue.pop(0))]

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

    # ---- epochs --------------------------------------------------------------------------------
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
            explored = self.steps_seen >= self.ramp_end
            if self.early_stop and full and explored and pi <= self.alpha:
                self.should_stop = True
                self.stop_reason = (f"candidate pool update frequency {pi:.3f} <= alpha {self.alpha} on a "
                                    f"full pool of {self.pool.capacity} after the exploration schedule "
                                    f"(GreedyNAS Sec. 4.1.2 stopping principle)")
        self.snapshot = sorted(now)
        return out

    def stats(self) -> dict[str, Any]:
        return {"eps": round(self.last_eps, 4), "pool": len(self.pool), "rounds": self.rounds,
                "from_pool": self.from_pool, "pool_best": (self.pool.sorted()[0][1] if len(self.pool) else None)}

    def describe(self) -> dict[str, Any]:
        return {**self.options.to_dict(), "pool_size": self.pool.capacity, "warmup_steps": self.warmup_steps,
                "eps_ramp_end_step": self.ramp_end, "earliest_stop_epoch": self.earliest_stop_epoch()}

    def notes(self) -> list[str]:
        if not self.early_stop:
            return ["greedy: stopping rule off (early_stop=false): all epochs train"]
        e = self.earliest_stop_epoch()
        needs = (f"the uniform warm-up ({self.warmup_steps} steps), the exploration schedule (eps 0 -> "
                 f"{self.eps_max:g} by step {self.ramp_end}) and a full pool of {self.pool.capacity} at "
                 f"two epoch ends")
        if e > self.epochs:
            return [f"greedy: the stopping rule cannot fire within {self.epochs} epochs "
                    f"({self.total_steps} steps): it needs {needs} (earliest at epoch {e}); all epochs train"]
        return [f"greedy: the stopping rule may end the run from epoch {e} on (it needs {needs})"]

    def artifacts(self) -> dict[str, dict[str, Any]]:
        return {"pool.json": self.pool_json()}

    def pool_json(self) -> dict[str, Any]:
        """The candidate pool as written to ``pool.json`` (best first)."""
        return {"space": self.space.config(), "strategy": self.name, "capacity": self.pool.capacity,
                "size": len(self.pool), "update_freq": self.update_freq,
                "note": "loss = cross-entropy on the search-val scoring batch when the path was last "
                        "scored (supernet weights of that moment)",
                "entries": self.pool.to_json()}

    # ---- state ---------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {"pool": self.pool.state_dict(), "queue": [list(g) for g in self.queue],
                "snapshot": None if self.snapshot is None else [list(g) for g in self.snapshot],
                "update_freq": list(self.update_freq), "rounds": self.rounds,
                "from_pool": self.from_pool, "candidates": self.candidates, "last_eps": self.last_eps,
                "steps_seen": self.steps_seen}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool.load_state_dict(state["pool"])
        self.queue = [tuple(int(v) for v in g) for g in state["queue"]]
        snap = state.get("snapshot")
        self.snapshot = None if snap is None else [tuple(int(v) for v in g) for g in snap]
        self.update_freq = [float(v) for v in state["update_freq"]]
        self.rounds, self.from_pool = int(state["rounds"]), int(state["from_pool"])
        self.candidates, self.last_eps = int(state["candidates"]), float(state["last_eps"])
        self.steps_seen = int(state.get("steps_seen", 0))
