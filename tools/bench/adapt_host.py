"""How well a shipped host table predicts this computer, before and after adapting it
(``hwnas.latency.adapt``: a few subnets measured end to end, the table-sum calibration refitted).

In a temporary tables folder (your own is not touched), the shipped table of ``--space`` is adapted
from ``--adapt`` subnets spread over its range, then ``--n`` held-out random subnets are measured
end to end on this computer with the table's runtime and predicted by the shipped calibration and
by the adapted one. Prints MAPE, the share within +-10 % and Kendall tau of both, the adaptation's
scale and the seconds it took. ``--scale F`` first multiplies every op time of the table by F
(a computer F times slower than this one made it), ``--perturb P`` by a random factor in
[1 - P, 1 + P] per op.

Usage: OMP_NUM_THREADS=1 python tools/bench/adapt_host.py [--space mbv2] [--n 10] [--adapt 6]
[--scale 2 --perturb 0.2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402


def main() -> None:
    from hwnas.devices.profiles import load_profile
    from hwnas.latency.adapt import adapt_table
    from hwnas.latency.build import device_runner
    from hwnas.latency.predict import LatencyPredictor
    from hwnas.latency.predictors.fitting import score
    from hwnas.latency.table import LatencyTable, default_table_dir
    from hwnas.latency.validate import EndToEndStore, measure_subnets
    from hwnas.spaces import create_space

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", default="mbv2")
    ap.add_argument("--width", type=float, default=0.35)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--runtime", default="tflite")
    ap.add_argument("--n", type=int, default=10, help="held-out subnets measured")
    ap.add_argument("--adapt", type=int, default=6, help="subnets the adaptation measures")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--perturb", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=777)
    a = ap.parse_args()
    space = create_space(a.space, width=a.width, resolution=a.resolution, num_classes=10)
    shipped = default_table_dir() / "host" / f"{a.space}-{a.runtime}.json"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HWNAS_TABLES_DIR"] = str(Path(tmp) / "user")
        table = LatencyTable.load(shipped)
        rng = np.random.default_rng(a.seed)
        if a.scale != 1.0 or a.perturb:
            for e in table.entries.values():
                f = a.scale * rng.uniform(1 - a.perturb, 1 + a.perturb)
                for k in ("mean_ms", "median_ms", "std_ms", "min_ms", "max_ms"):
                    e[k] = e[k] * f
        table.save(Path(tmp) / "theirs" / "host" / shipped.name)
        profile = load_profile("host")
        runner = device_runner(profile, *table.runtime_precision)
        t0 = time.perf_counter()
        ad = adapt_table(table, space, runner, threads=profile.cpu.default_threads, root=Path(tmp) / "user",
                         n=a.adapt)
        t_adapt = time.perf_counter() - t0
        held = [tuple(int(v) for v in g) for g in space.sample_many(np.random.default_rng(a.seed + 1), a.n)]
        measured = measure_subnets(runner, space, held, a.runtime, EndToEndStore(Path(tmp) / "held.e2e.json"),
                                   threads=profile.cpu.default_threads)
        X = np.asarray(held)
        before = LatencyPredictor(table, space)(X)
        after = LatencyPredictor(ad.apply(LatencyTable.load(table.path), space), space)(X)
        for name, p in (("shipped calibration", before), ("adapted", after)):
            s = score(p, measured)
            print(f"{name:>19}: MAPE {s['mape']:.1%}, within +-10 % {s['within_10']:.0%}, Kendall tau "
                  f"{s['kendall_tau']:.3f}; predicted / measured median {np.median(p / measured):.3f}")
        print(f"adaptation: {len(ad.genes)} subnets, {t_adapt:.0f} s; this computer runs {ad.speed_ratio:.2f}x "
              f"the table's calibrated times; scale {ad.scale:.3f}, per-op {ad.per_op_ms:+.4f} ms, offset "
              f"{ad.offset_ms:+.4f} ms; table x{a.scale:g} perturbed +-{a.perturb:.0%}; {a.n} held-out subnets "
              f"measured; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
