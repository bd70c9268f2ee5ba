"""Search quality: hypervolume of the search's front / the exhaustive front, on an enumerable space.

Space: ``mbv2`` with only its first ``--free`` layers searchable (6 -> 86,436 architectures), the
rest fixed to ``smallest()``. Objectives: MACs and a SYNTHETIC error proxy (fixed random score per
(layer, option), mostly improving with capacity; see ``hwnas.search.quality``). Hypervolume in
objectives normalised to the exhaustive front (ideal 0, nadir 1), reference point 1.1. Target for
NSGA-II 50 x 20: >= 0.95. Random search with the same 1000 evaluations is the baseline.

A second table checks single-objective search (SPOS evolution): the best synthetic error found
under a MACs budget (30 % quantile of the space) against the exhaustive optimum, and how many
feasible architectures of the space beat it. Prints tables; never asserts.

    python tools/bench/search_quality.py [--seeds 0,1,2,3,4] [--free 6] [--algorithms nsga2,evolution,random]
"""

from __future__ import annotations

import argparse
import statistics
import time

from rich.console import Console
from rich.table import Table

from hwnas.search.quality import constrained_quality, search_quality


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--free", type=int, default=6)
    ap.add_argument("--algorithms", default="nsga2,random")
    ap.add_argument("--constrained", default="evolution,random,nsga2",
                    help="algorithms for the budgeted single-objective table ('' to skip)")
    ap.add_argument("--error-seed", type=int, default=0)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    t = Table(title=f"search quality: HV(search front) / HV(exhaustive front), mbv2 first {args.free} layers")
    for col in ("algorithm", "seed", "space size", "exhaustive front", "search front", "evaluated",
                "HV ratio", "s"):
        t.add_column(col, justify="right")
    for algo in args.algorithms.split(","):
        ratios = []
        for seed in seeds:
            t0 = time.perf_counter()
            r = search_quality(seed, n_free=args.free, algorithm=algo, error_seed=args.error_seed)
            ratios.append(r.hv_ratio)
            t.add_row(algo, str(seed), f"{r.space_size:,}", str(len(r.exhaustive_front)),
                      str(len(r.search_front)), str(r.n_evaluated), f"{r.hv_ratio:.4f}",
                      f"{time.perf_counter() - t0:.2f}")
        t.add_row(algo, "mean", "", "", "", "", f"{statistics.mean(ratios):.4f}", "", end_section=True)
    console = Console(width=max(100, Console().width))
    console.print(t)
    if not args.constrained:
        return
    t = Table(title="best error under a MACs budget (30 % quantile) vs the exhaustive optimum")
    for col in ("algorithm", "seed", "budget MACs", "optimum %", "found %", "better archs", "top fraction",
                "feasible archs", "evaluated"):
        t.add_column(col, justify="right")
    for algo in args.constrained.split(","):
        for seed in seeds:
            r = constrained_quality(seed, algorithm=algo, n_free=args.free, error_seed=args.error_seed)
            t.add_row(algo, str(seed), f"{r.budget / 1e6:.1f}M", f"{r.optimum:.3f}", f"{r.found:.3f}",
                      str(r.n_better), f"{r.top_fraction:.2e}", f"{r.n_feasible:,}", str(r.n_evaluated), end_section=seed == seeds[-1])
    console.print(t)


if __name__ == "__main__":
    main()
