"""Supernet training throughput: a supernet step vs the static subnet of the same path, and the
extra cost of GreedyNAS path scoring per training step.

For each of ``--archs`` uniformly sampled paths, one training step (forward, backward, SGD
update: the loop's own optimizer) runs on the same batch through the supernet and through the
materialized subnet, in the same process; the table gives images/s and their ratio (medians).
Greedy: one filtering round scores ``m`` paths on ``--score-batch`` search-val-sized images in eval
mode and is amortised over the ``k`` steps it feeds (GreedyNAS Alg. 2); the ratio is
``(step + round / k) / step``. Prints a table; never asserts timings.

With ``--sharing elastic`` the supernet slices one block per layer by kernel and width (OFA);
the ratio then includes the cost of slicing the weights on every call.

    python tools/bench/train_throughput.py [--space mbv2] [--width 0.25] [--resolution 32] [--batch 64]
        [--sharing independent|elastic]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from hwnas.spaces import create_space
from hwnas.supernet import build_supernet, materialize
from hwnas.train.config import TrainConfig
from hwnas.train.distributed import DistInfo
from hwnas.train.loop import build_criterion, build_optimizer
from hwnas.train.strategies.greedy import make_score_fn


def step_seconds(model, forward, x, y, config, repeats: int) -> float:
    """Median wall time of one training step (after one warm-up step)."""
    opt = build_optimizer(model, config, 0.01)
    crit = build_criterion(config)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        crit(forward(x), y).backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="mbv2")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--archs", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--m", type=int, default=10, help="greedy: paths scored per round")
    ap.add_argument("--k", type=int, default=5, help="greedy: steps fed by one round")
    ap.add_argument("--score-batch", type=int, default=256, help="greedy: images per path score")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--torch-device", dest="device", default="cpu", help="cpu or cuda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sharing", default="independent", help="independent or elastic")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    space = create_space(args.space, width=args.width, resolution=args.resolution, num_classes=10)
    config = TrainConfig(space=args.space, width=args.width, resolution=args.resolution)
    net = build_supernet(space, args.sharing).to(dev).train()
    rng = np.random.default_rng(args.seed)
    x = torch.randn(args.batch, space.in_channels, args.resolution, args.resolution, device=dev)
    y = torch.randint(0, 10, (args.batch,), device=dev)
    sup, sta = [], []
    for _ in range(args.archs):
        g = space.sample(rng)
        sup.append(step_seconds(net, lambda t: net(t, g), x, y, config, args.repeats))
        sub = materialize(net, g).to(dev).train()
        sta.append(step_seconds(sub, sub, x, y, config, args.repeats))
    ratios = [a / b for a, b in zip(sup, sta)]
    step = statistics.median(sup)

    info = DistInfo(rank=0, world=1, local_rank=0, device=dev)
    sx = torch.randn(args.score_batch, space.in_channels, args.resolution, args.resolution, device=dev)
    sy = torch.randint(0, 10, (args.score_batch,), device=dev)
    score = make_score_fn(net, sx, sy, args.score_batch, info, args.batch, use_amp=False)
    rounds = []
    for _ in range(max(1, args.repeats)):
        cands = [space.sample(rng) for _ in range(args.m)]
        t0 = time.perf_counter()
        score(cands)
        rounds.append(time.perf_counter() - t0)
    per_step = statistics.median(rounds) / args.k

    console = Console()
    t = Table(title=f"{space.name} w{args.width} r{args.resolution} ({args.sharing}), batch {args.batch}, "
                    f"{args.archs} paths, {args.threads} thread(s), {dev}")
    for col in ("measure", "value"):
        t.add_column(col)
    t.add_row("supernet step, images/s (median)", f"{args.batch / step:.0f}")
    t.add_row("static subnet step, images/s (median)", f"{args.batch / statistics.median(sta):.0f}")
    t.add_row("supernet / static step time (median ratio)", f"{statistics.median(ratios):.2f}")
    t.add_row("supernet / static step time (max ratio)", f"{max(ratios):.2f}")
    t.add_row(f"greedy scoring: round of m={args.m} on {args.score_batch} images", f"{statistics.median(rounds):.3f} s")
    t.add_row(f"greedy scoring per training step (round / k={args.k})", f"{per_step:.3f} s")
    t.add_row("greedy / uniform step time (ratio)", f"{(step + per_step) / step:.2f}")
    t.add_row("greedy images/s (training images)", f"{args.batch / (step + per_step):.0f}")
    console.print(t)


if __name__ == "__main__":
    main()
