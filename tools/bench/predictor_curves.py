"""Learning curves of every latency predictor: fitted on 10 / 20 / 50 / 100 measured subnets,
scored on held-out ones (MAPE, within +-5 % / +-10 %, Kendall tau).

Measures nothing: the measurements come from a device's end-to-end store next to its table
(``<table>.<space@wXrY>.e2e.json``, written by ``hwnas lut calibrate / validate / fit``; the shipped
host tables have one) or from a CSV (``--from-csv``, columns genes and latency_ms). Each size is
drawn ``--repeats`` times from the measurements left after holding out ``--test`` of them.

Usage: OMP_NUM_THREADS=1 python tools/bench/predictor_curves.py --device host --space mbv2 \
    --width 0.35 --resolution 32 [--from-csv FILE] [--sizes 10,20,50,100] [--test 32] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hwnas.latency.predictors import predictor_names  # noqa: E402
from hwnas.latency.predictors.fitting import (  # noqa: E402
    available,
    context_for,
    e2e_store_path,
    learning_curve,
    read_csv,
    store_measurements,
)
from hwnas.spaces import create_space  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="host")
    ap.add_argument("--space", default="mbv2")
    ap.add_argument("--width", type=float)
    ap.add_argument("--resolution", type=int)
    ap.add_argument("--num-classes", type=int)
    ap.add_argument("--runtime", default="tflite")
    ap.add_argument("--tables-dir")
    ap.add_argument("--from-csv")
    ap.add_argument("--sizes", default="10,20,50,100")
    ap.add_argument("--test", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    space = create_space(a.space, width=a.width, resolution=a.resolution, num_classes=a.num_classes)
    ctx = context_for(a.device, space, a.runtime, a.tables_dir)
    if a.from_csv:
        m = read_csv(a.from_csv, space)
    else:
        path = e2e_store_path(a.device, space, ctx.runtime, a.tables_dir, existing=True)
        m = store_measurements(path, f"e2e:{path.name}")
    names, skipped = available(predictor_names(), ctx)
    sizes = [int(s) for s in a.sizes.split(",")]
    t0 = time.perf_counter()
    points = learning_curve(names, m, ctx, sizes=sizes, test=a.test, repeats=a.repeats)
    took = time.perf_counter() - t0
    if a.json:
        print(json.dumps({"source": m.source, "measurements": len(m), "seconds": took,
                          "points": [{"predictor": p.predictor, "n_fit": p.n_fit, **p.scores} for p in points]},
                         indent=2))
        return
    held = int(points[0].scores["n"]) if points else 0
    print(f"{a.device} {space.name} w{space.width:g} r{space.resolution} {ctx.runtime}: {len(m)} measured subnets "
          f"({m.source}), {held} held out, mean of {a.repeats} draws; {took:.0f} s")
    print("| predictor | " + " | ".join(f"n={k}: +-10 % / MAPE / tau" for k in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name in names:
        cells = []
        for k in sizes:
            p = next((p for p in points if p.predictor == name and p.n_fit == k), None)
            cells.append("-" if p is None else f"{p.scores['within_10']:.0%} / {p.scores['mape']:.1%} / "
                                               f"{p.scores['kendall_tau']:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for name, why in skipped.items():
        print(f"{name} skipped: {why}")


if __name__ == "__main__":
    main()
