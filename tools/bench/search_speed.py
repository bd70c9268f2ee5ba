"""Search speed: evaluations/s of the cheap objectives and the time of a full 50 x 20 NSGA-II run.

Latency here is SYNTHETIC (``hwnas.search.quality.synthetic_latency_predictor``: random per-op
throughput keyed by the latency-table key, summed per block like a real table) until measured
tables exist; it has the cost profile of the real ``LatencyPredictor`` (per-block gathers), not its
values. Target: a 50 x 20 run on latency + MACs under 5 s. Prints a table; never asserts timings.

    python tools/bench/search_speed.py [--spaces mbv2,mbv2-se,shufflenetv2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from hwnas.cost import CostModel
from hwnas.search import ArchProblem, latency_objective, macs_objective, run_search
from hwnas.search.quality import synthetic_latency_predictor
from hwnas.spaces import create_space


def problem_for(space, predict, cm, max_latency: float | None = None) -> ArchProblem:
    return ArchProblem(space, [latency_objective(predict, max_latency), macs_objective(cm)], cost_model=cm)


def evals_per_s(space, predict, cm, n: int, repeats: int) -> float:
    """Distinct architectures evaluated per second by ``ArchProblem`` (fresh history each time)."""
    rng = np.random.default_rng(0)
    times = []
    for _ in range(repeats):
        X = space.sample_many(rng, n)
        p = problem_for(space, predict, cm)
        t0 = time.perf_counter()
        p.evaluate(X)
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spaces", default="mbv2,mbv2-se,shufflenetv2")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    t = Table(title="search speed (latency = SYNTHETIC table, + MACs; median of repeats)")
    for col in ("space", "fn evals/s", "problem @50", "@1k", "@20k", "nsga2 s", "evol. s",
                "random s"):
        t.add_column(col, justify="right")
    for name in args.spaces.split(","):
        space = create_space(name)
        cm = CostModel(space)
        predict = synthetic_latency_predictor(space, seed=0)
        X = space.sample_many(np.random.default_rng(1), 20000)
        t0 = time.perf_counter()
        predict(X), cm(X)
        raw = len(X) / (time.perf_counter() - t0)
        rates = [evals_per_s(space, predict, cm, n, args.repeats) for n in (50, 1000, 20000)]
        budget = float(np.median(predict(X)))  # a budget half the space meets
        runs = []
        for algo in ("nsga2", "evolution", "random"):
            times = []
            for r in range(args.repeats):
                t0 = time.perf_counter()
                run_search(problem_for(space, predict, cm, budget), algo, pop=50, gens=20, seed=r,
                           progress=False)
                times.append(time.perf_counter() - t0)
            runs.append(statistics.median(times))
        t.add_row(name, f"{raw:,.0f}", *[f"{v:,.0f}" for v in rates], *[f"{v:.2f}" for v in runs])
    Console(width=max(100, Console().width)).print(t)
    print("fn evals/s: latency + MACs functions alone on 20k rows; problem @n: ArchProblem.evaluate on n\n"
          "new rows (history, F, G); nsga2/evol./random s: a full 50 x 20 run (1000 evaluations) on\n"
          "latency + MACs under a latency budget (target < 5 s)")


if __name__ == "__main__":
    main()
