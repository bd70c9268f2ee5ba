"""Early-predictor comparison (SparseNAS Sec. 5.2, Table 3 / Fig. 5): GBDT (100 estimators, lr
0.01, the paper's choice) against a random forest (100 estimators, AttentiveNAS) and the
three-layer MLP of Once-for-All (400 units per layer), on architecture / accuracy pairs sampled
from one proxy supernet trained on built-in data.

    OMP_NUM_THREADS=1 python tools/bench/sparse_predictors.py --work runs/sparsebench [--pairs 400] \\
        [--splits 5] [--test-fraction 0.2]

Each predictor is fitted on the same seeded splits (``--splits`` of them: seeds 0..n-1 of the
split and the model) and scored on the held-out pairs: RMSE in top-1 points, the mean-shifted RMSE
(Sec. 5.2.2), Kendall tau, fit seconds. Prints mean +- sd over the splits and each metric's
ratio to GBDT's. Stages are shared with the other SparseNAS benchmarks (tools/bench/sparse_flow.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sparse_flow import add_flow_args, ensure_pairs, flow_from_args, log  # noqa: E402

KINDS = ("gbdt", "rf", "mlp")
#: SparseNAS Table 3 (ImageNet, OFA-MobileNetV3, 1000 pairs): RMSE in points, fit seconds
PAPER = {"gbdt": (0.27, 0.71), "rf": (0.29, 1.05), "mlp": (0.53, 12.9)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flow_args(ap)
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--json-out", type=Path, default=None)
    a = ap.parse_args()
    from hwnas.sparse.predictor import fit_predictor

    f = flow_from_args(a)
    t0 = time.perf_counter()
    pairs, pair_s = ensure_pairs(f, a.pairs)
    top1 = [100 * float(t) for t in pairs.top1]
    log(f"{len(pairs)} pairs ({pair_s:.0f} s now): top-1 {min(top1):.1f}..{max(top1):.1f} %, "
        f"mean {statistics.mean(top1):.2f}, sd {statistics.pstdev(top1):.2f}")
    rows: dict[str, dict[str, list[float]]] = {k: {"rmse": [], "rmse_shifted": [], "kendall": [], "fit_s": []}
                                               for k in KINDS}
    for s in range(a.splits):
        for k in KINDS:
            m = fit_predictor(pairs, k, test_fraction=a.test_fraction, seed=s).metrics
            for key in ("rmse", "rmse_shifted", "kendall"):
                rows[k][key].append(float(m[key]))
            rows[k]["fit_s"].append(float(m["fit_seconds"]))
    n_test = m["n_test"]

    def ms(v: list[float]) -> str:
        return f"{statistics.mean(v):.3f} +- {statistics.pstdev(v):.3f}"

    print(f"\nearly predictors on {len(pairs)} pairs of {a.space} w{a.width} r{a.resolution} {a.data} "
          f"({a.sharing} proxy), {a.splits} splits x {n_test} held-out pairs; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print("| predictor | RMSE (points) | shifted RMSE | Kendall tau | fit s | RMSE / GBDT | tau / GBDT | "
          "fit s / GBDT | paper RMSE, fit s (Table 3) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    g = {key: statistics.mean(v) for key, v in rows["gbdt"].items()}
    summary = {}
    for k in KINDS:
        r = rows[k]
        mean = {key: statistics.mean(v) for key, v in r.items()}
        summary[k] = {"mean": mean, "sd": {key: statistics.pstdev(v) for key, v in r.items()}}
        print(f"| {k} | {ms(r['rmse'])} | {ms(r['rmse_shifted'])} | {ms(r['kendall'])} | {ms(r['fit_s'])} | "
              f"{mean['rmse'] / g['rmse']:.2f} | {mean['kendall'] / g['kendall']:.2f} | "
              f"{mean['fit_s'] / g['fit_s']:.1f} | {PAPER[k][0]}, {PAPER[k][1]} |")
    print(f"\nbench wall time {time.perf_counter() - t0:.0f} s")
    if a.json_out:
        a.json_out.write_text(json.dumps({"pairs": len(pairs), "splits": a.splits, "n_test": n_test,
                                          "predictors": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
