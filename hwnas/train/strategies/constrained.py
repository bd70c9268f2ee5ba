"""``constrained``: SPOS uniform-constraint sampling (SPOS Sec. 3.2) over MACs or latency ranges.

SPOS Sec. 3.2: "we randomly choose a range, and then sample the architecture repeatedly until the
FLOPs of sampled architecture falls in the range", so that training covers every FLOPs level and
not only the crowded middle of the space. Here the span ``range`` (default: the central 98 % of
the costs of uniformly sampled paths) is cut into ``bins`` equal sub-ranges, as the SPOS reference
code bins its FLOPs span; each step draws one bin uniformly, then draws uniform paths until one
falls inside it. ``bins=1`` keeps one constant range (every step samples from ``range``).

The cost is MACs (:class:`~hwnas.cost.CostModel`) or, with ``cost=latency``, milliseconds predicted
from the latency table of the run's ``--device`` / ``--runtime``. A span no architecture meets is a
one-line error stating the space's cost range; a bin that 4096 uniform probe paths never hit is
skipped and reported (uniform rejection sampling cannot reach it in reasonable time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hwnas.errors import HwnasError
from hwnas.train.strategies.base import CostFn, PathRun, RunContext, Strategy
from hwnas.train.strategies.options import StrategyOptions
from hwnas.train.strategies.registry import register_strategy

PROBE_PATHS = 4096
#: default span: these percentiles of the probe paths' costs
DEFAULT_PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class ConstrainedOptions(StrategyOptions):
    """``cost``: macs or latency; ``range``: LO,HI (MACs counts like 2M, or ms; default: the central
    98 % of uniformly sampled paths); ``bins``: sub-ranges drawn per step (1: one constant range)."""

    cost: str = "macs"
    range: tuple[float, float] | None = None
    bins: int = 8

    def checks(self) -> list[tuple[bool, str]]:
        lo, hi = self.range if self.range is not None else (0.0, 0.0)
        return [
            (self.cost in ("macs", "latency"), f"cost must be macs or latency, got {self.cost!r}"),
            (0 <= lo <= hi, f"range must be LO,HI with 0 <= LO <= HI, got {lo:g},{hi:g}"),
            (self.bins >= 1, f"bins must be >= 1, got {self.bins}"),
        ]


@register_strategy
class ConstrainedStrategy(Strategy):
    """SPOS uniform-constraint sampling: per step a random cost range, then a uniform path in it."""

    name: ClassVar[str] = "constrained"
    summary: ClassVar[str] = ("a random MACs or latency range per step, then a uniform path inside it "
                              "(SPOS Sec. 3.2 uniform-constraint sampling)")
    Options: ClassVar[type[StrategyOptions]] = ConstrainedOptions
    #: candidates drawn and checked per vectorised round; give up after this many draws
    batch: ClassVar[int] = 256
    max_draws: ClassVar[int] = 200_000

    def __init__(self, options: ConstrainedOptions, run: RunContext, cost_fn: CostFn | None = None) -> None:
        super().__init__(options, run)
        self.cost_name = "MACs" if options.cost == "macs" else "latency (ms)"
        self.fmt = (lambda v: f"{v:,.0f}") if options.cost == "macs" else (lambda v: f"{v:.4g}")
        if cost_fn is None:
            if run.costs is None:
                raise HwnasError("strategy 'constrained' needs the run's cost functions")
            cost_fn = run.costs.get(options.cost)
        self.cost_fn = cost_fn
        space = self.space
        ends = np.array([space.smallest(), space.largest()])
        probe = np.concatenate([space.sample_many(np.random.default_rng(run.seed + 1), PROBE_PATHS), ends])
        probe_cost = np.asarray(cost_fn(probe), dtype=np.float64)
        if options.cost == "macs":  # block-additive: smallest() / largest() bound the space exactly
            c_min, c_max, exact = float(probe_cost[-2]), float(probe_cost[-1]), True
        else:
            c_min, c_max, exact = float(probe_cost.min()), float(probe_cost.max()), False
        if options.range is None:
            lo, hi = (float(v) for v in np.percentile(probe_cost[:-2], DEFAULT_PERCENTILES))
        else:
            lo, hi = (float(v) for v in options.range)
        self.lo, self.hi = lo, hi
        empty = hi < c_min or lo > c_max
        if not exact and not empty:
            empty = not ((probe_cost >= lo) & (probe_cost <= hi)).any()
        if empty:
            how = "" if exact else f" (over {PROBE_PATHS} sampled paths)"
            raise HwnasError(
                f"no architecture of space {space.name!r} has {self.cost_name} in "
                f"[{self.fmt(lo)}, {self.fmt(hi)}]: the space spans {self.fmt(c_min)} .. {self.fmt(c_max)}{how}")
        edges = np.linspace(lo, hi, options.bins + 1)
        bins = [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]
        if options.bins > 1:
            hit = [bool(((probe_cost >= a) & (probe_cost <= b)).any()) for a, b in bins]
            self.skipped = [bn for bn, h in zip(bins, hit) if not h]
            bins = [bn for bn, h in zip(bins, hit) if h]
            if not bins:
                raise HwnasError(f"no {self.cost_name} bin of [{self.fmt(lo)}, {self.fmt(hi)}] is reached by "
                                 f"{PROBE_PATHS} uniform paths of space {space.name!r}; widen the range")
        else:
            self.skipped = []
        self.bins = bins
        self.draws = 0
        self.accepted = 0
        self.bin_counts = [0] * len(bins)

    def paths(self, step: int) -> list[PathRun]:
        b = int(self.rng.integers(len(self.bins))) if len(self.bins) > 1 else 0
        lo, hi = self.bins[b]
        tried = 0
        while tried < self.max_draws:
            cand = self.space.sample_many(self.rng, self.batch)
            c = np.asarray(self.cost_fn(cand), dtype=np.float64)
            ok = np.flatnonzero((c >= lo) & (c <= hi))
            if ok.size:
                self.draws += int(ok[0]) + 1
                self.accepted += 1
                self.bin_counts[b] += 1
                return [PathRun(tuple(int(v) for v in cand[ok[0]]))]
            tried += self.batch
            self.draws += self.batch
        raise HwnasError(
            f"no path with {self.cost_name} in [{self.fmt(lo)}, {self.fmt(hi)}] in {tried} uniform draws "
            f"of space {self.space.name!r}; widen the range or use fewer bins")

    def stats(self) -> dict[str, Any]:
        return {"acceptance": round(self.accepted / self.draws, 4) if self.draws else None}

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        return {"bin_counts": list(self.bin_counts)}

    def describe(self) -> dict[str, Any]:
        return {**self.options.to_dict(), "span": [self.lo, self.hi], "bins_used": [list(b) for b in self.bins],
                "bins_skipped": [list(b) for b in self.skipped], "unit": self.cost_name}

    def notes(self) -> list[str]:
        out = [f"constrained: {len(self.bins)} {self.cost_name} range(s) over "
               f"[{self.fmt(self.lo)}, {self.fmt(self.hi)}], one drawn per step"]
        if self.skipped:
            out.append(f"constrained: {len(self.skipped)} bin(s) never hit by {PROBE_PATHS} uniform paths "
                       f"are skipped: " + ", ".join(f"[{self.fmt(a)}, {self.fmt(b)}]" for a, b in self.skipped))
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {"draws": self.draws, "accepted": self.accepted, "range": [self.lo, self.hi],
                "bin_counts": list(self.bin_counts)}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.draws, self.accepted = int(state["draws"]), int(state["accepted"])
        self.bin_counts = [int(v) for v in state.get("bin_counts", [0] * len(self.bins))]
