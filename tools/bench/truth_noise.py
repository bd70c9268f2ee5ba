"""How well can a ground truth repeat? Training noise, range and the projected seed-to-seed tau.

    python tools/bench/truth_noise.py hwnas/ground_truth/gratings-fine-mbv2-w0.25-r16.json [--n 30]

From a ground-truth file with two or more seeds: the per-training noise ``sigma`` (the standard
deviation of the difference of two seeds' top-1 around its mean, divided by sqrt 2: it holds the
training noise and the test split's sampling noise; a constant offset between the two seeds, also
reported, moves no rank), the binomial part of it (``sqrt(p (1 - p) / images)``), the top-1
range across subnets, the measured seed-to-seed Kendall tau, and a Monte Carlo projection of the
seed-to-seed Kendall tau for ``--n`` subnets spread over the same MACs range: the true accuracy of
a subnet is the two-seed mean interpolated over MACs, each seed adds Gaussian noise of ``sigma``.
It also reports the ``sigma`` that the projection needs for tau 0.8 at that range. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau


def projected_tau(macs: np.ndarray, mean: np.ndarray, sigma: float, n: int, trials: int = 2000,
                  seed: int = 0) -> float:
    """Mean seed-to-seed Kendall tau of ``n`` subnets over the MACs range with noise ``sigma``."""
    order = np.argsort(macs)
    grid = np.linspace(macs.min(), macs.max(), n)
    truth = np.interp(grid, macs[order], mean[order])
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(trials):
        a = truth + rng.normal(0, sigma, n)
        b = truth + rng.normal(0, sigma, n)
        taus.append(kendalltau(a, b).statistic)
    return float(np.mean(taus))


def needed_sigma(macs: np.ndarray, mean: np.ndarray, n: int, target: float = 0.8) -> float:
    """The largest noise (bisection, 0.05-point steps) whose projected tau still reaches ``target``."""
    lo, hi = 0.0, 10.0
    while hi - lo > 0.05:
        mid = (lo + hi) / 2
        if projected_tau(macs, mean, mid, n, trials=400) >= target:
            lo = mid
        else:
            hi = mid
    return round(lo, 2)


def analyse(path: Path, n: int) -> dict:
    d = json.loads(path.read_text(encoding="utf-8"))
    top1 = 100 * np.array([e["top1"] for e in d["subnets"]], dtype=np.float64)  # subnets x seeds
    if top1.shape[1] < 2:
        raise SystemExit(f"error: {path} has {top1.shape[1]} seed(s); the noise needs two")
    macs = np.array([e["macs"] for e in d["subnets"]], dtype=np.float64)
    diff = top1[:, 0] - top1[:, 1]
    sigma = float(np.std(diff, ddof=1) / np.sqrt(2))
    mean = top1.mean(axis=1)
    images = int(d["data"]["images"])
    p = mean / 100
    binomial = float(100 * np.sqrt(np.mean(p * (1 - p)) / images))
    return {"file": str(path), "subnets": len(mean), "images": images,
            "recipe_epochs": d["recipe"]["epochs"],
            "sigma_points": round(sigma, 2), "binomial_points": round(binomial, 2),
            "mean_seed_difference_points": round(float(diff.mean()), 2),
            "top1_range_points": round(float(mean.max() - mean.min()), 2),
            "top1_min": round(float(mean.min()), 2), "top1_max": round(float(mean.max()), 2),
            "sigma_over_range": round(sigma / float(mean.max() - mean.min()), 3),
            "seed_to_seed_kendall": round(float(kendalltau(top1[:, 0], top1[:, 1]).statistic), 3),
            "macs_kendall": round(float(kendalltau(macs, mean).statistic), 3),
            f"projected_kendall_n{n}": round(projected_tau(macs, mean, sigma, n), 3),
            f"sigma_for_kendall_0.8_n{n}": needed_sigma(macs, mean, n)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("truth", nargs="+", type=Path)
    ap.add_argument("--n", type=int, default=30, help="subnets of the projected ground truth")
    a = ap.parse_args(argv)
    for p in a.truth:
        print(json.dumps(analyse(p, a.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
