"""Supernet path vs materialized subnet: forward+backward time on the same batch, same run.

Also the vectorised cost model's throughput (archs/s). Prints a table; never asserts timings.

    python tools/bench/supernet_overhead.py [--space mbv2] [--width 0.5] [--resolution 64] [--batch 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from hwnas.cost import CostModel
from hwnas.spaces import create_space
from hwnas.supernet import build_supernet, materialize


def fwd_bwd_ms(fn, x, repeats: int) -> float:
    """Median wall time of forward+backward of ``fn(x)`` in ms (after one warm-up)."""
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        fn(x).logsumexp(1).mean().backward()
        if i:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spaces", default="mbv2,mbv2-se,shufflenetv2")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--resolution", type=int, default=48)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    console = Console()
    t = Table(title=f"supernet vs static subnet, fwd+bwd, batch {args.batch}, {args.resolution}px, "
                    f"width {args.width}, {args.threads} threads")
    for col in ("space", "supernet ms (median)", "static ms (median)", "median ratio", "max ratio",
                "cost model archs/s"):
        t.add_column(col)
    for name in args.spaces.split(","):
        space = create_space(name, width=args.width, resolution=args.resolution, num_classes=10)
        net = build_supernet(space).train()
        rng = np.random.default_rng(args.seed)
        x = torch.randn(args.batch, 3, args.resolution, args.resolution)
        ratios, sup_ms, sta_ms = [], [], []
        for _ in range(args.archs):
            g = space.sample(rng)
            sub = materialize(net, g).train()
            a = fwd_bwd_ms(lambda inp: net(inp, g), x, args.repeats)
            b = fwd_bwd_ms(sub, x, args.repeats)
            sup_ms.append(a)
            sta_ms.append(b)
            ratios.append(a / b)
        cm = CostModel(space)
        genes = space.sample_many(rng, 100_000)
        cm(genes[:100])
        t0 = time.perf_counter()
        cm(genes)
        rate = len(genes) / (time.perf_counter() - t0)
        t.add_row(name, f"{statistics.median(sup_ms):.1f}", f"{statistics.median(sta_ms):.1f}",
                  f"{statistics.median(ratios):.3f}", f"{max(ratios):.3f}", f"{rate:,.0f}")
    console.print(t)


if __name__ == "__main__":
    main()
