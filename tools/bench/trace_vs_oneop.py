"""Latency tables from op-level traces against one-op tables: building time and accuracy.

Builds the whole-space table of a space on the host both ways (``hwnas profile --method one-op``
and ``--method trace``) with fresh model caches, timing the exports and the measuring apart; then
measures ``--calibrate`` random subnets (plus smallest and largest) and ``--n`` held-out random
subnets end to end once, fits each table's calibration on the first and scores both on the
second: MAPE, within +-10 %, Kendall tau, uncalibrated (the table sum as measured, with the trace
table's fitted run overhead) and calibrated.

Usage: OMP_NUM_THREADS=1 python tools/bench/trace_vs_oneop.py --space mbv2 --width 0.35 \
    --resolution 32 --runtime onnx [--rounds 3] [--calibrate 8] [--n 30] [--no-canary] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="mbv2")
    ap.add_argument("--width", type=float, default=0.35)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--runtime", default="onnx")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calibrate", type=int, default=8)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--no-canary", action="store_true", help="measure without the canary guard (both methods)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hwnas-trace-bench-"))
    os.environ["HWNAS_CACHE_DIR"] = str(work / "cache")  # cold caches: exports are timed

    import numpy as np
    from scipy.stats import kendalltau

    from hwnas.devices.profiles import load_profile
    from hwnas.latency.build import device_runner
    from hwnas.latency.keys import space_ops
    from hwnas.latency.opmodels import OpModelCache, SubnetModelCache
    from hwnas.latency.predict import LatencyPredictor, fit_calibration
    from hwnas.latency.profile import ProfileConfig, profile_device
    from hwnas.latency.table import space_tag
    from hwnas.latency.trace import cover_subnets
    from hwnas.latency.validate import CALIBRATION_SEED, VALIDATION_SEED, EndToEndStore, _archs, measure_subnets
    from hwnas.runners.host import running_tasks
    from hwnas.spaces import create_space

    space = create_space(a.space, width=a.width, resolution=a.resolution, num_classes=a.num_classes)
    host = load_profile("host")
    load_before = os.getloadavg()
    rows = {}
    tables = {}
    for method in ("one-op", "trace"):
        cfg = ProfileConfig(runtime=a.runtime, method=method, rounds=a.rounds, canary=not a.no_canary)
        t0 = time.perf_counter()
        if method == "one-op":
            cache = OpModelCache(cfg.runtime, precision=cfg.precision)
            models = len([cache.get(k, s) for k, s in space_ops(space).items()])
        else:
            cache = SubnetModelCache(space, cfg.runtime, precision=cfg.precision)
            models = len([cache.get(g) for g in cover_subnets(space)])
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = profile_device(host, space, cfg, tables_dir=work / method)
        measure_s = time.perf_counter() - t0
        tables[method] = table
        rows[method] = {"models": models, "keys": len(table.entries), "export_s": export_s,
                        "measure_s": measure_s, "total_s": export_s + measure_s,
                        "canary": table.metadata.get("last_profile_canary")}
    runner = device_runner(host, a.runtime)
    store = EndToEndStore(work / "e2e.json")
    threads = host.cpu.default_threads
    cal = _archs(space, a.calibrate, CALIBRATION_SEED, extremes=True)
    held = _archs(space, a.n, VALIDATION_SEED, extremes=False)
    t0 = time.perf_counter()
    measured = measure_subnets(runner, space, cal + held, a.runtime, store, threads=threads, canary=not a.no_canary)
    e2e_s = time.perf_counter() - t0
    m_cal, m_held = measured[: len(cal)], measured[len(cal):]
    tag = space_tag(space)

    def score(pred: np.ndarray) -> dict[str, float]:
        rel = np.abs(pred - m_held) / m_held
        return {"mape": float(rel.mean()), "within_10": float(np.mean(rel <= 0.10)),
                "kendall_tau": float(kendalltau(pred, m_held).statistic)}

    for method, table in tables.items():
        raw = LatencyPredictor(table, space)  # one-op: no calibration yet; trace: its run overhead
        rows[method]["raw"] = score(raw(np.asarray(held)))
        p = LatencyPredictor(table, space, calibrated=False)
        scale, per_op, offset = fit_calibration(p.raw(np.asarray(cal)), p.n_ops(np.asarray(cal)), m_cal)
        table.set_calibration(tag, scale, offset, per_op_ms=per_op, n=len(cal))
        rows[method]["calibrated"] = score(LatencyPredictor(table, space)(np.asarray(held)))
        rows[method]["calibration"] = {"scale": scale, "per_op_ms": per_op, "offset_ms": offset}
    doc = {"space": tag, "runtime": a.runtime, "rounds": a.rounds, "cpus": os.cpu_count(),
           "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
           "runnable_tasks_after": running_tasks(), "e2e_measure_s": e2e_s,
           "held_out": len(held), "calibration_subnets": len(cal), "methods": rows,
           "time_ratio_one_op_over_trace": rows["one-op"]["total_s"] / rows["trace"]["total_s"]}
    if a.json:
        print(json.dumps(doc, indent=2))
        return
    print(f"{tag} {a.runtime} on this host ({os.cpu_count()} CPUs, load average before "
          f"{load_before[0]:.2f}, after {doc['load_avg_after'][0]:.2f}); {a.rounds} rounds; "
          f"held-out {len(held)} subnets, calibration {len(cal)}; canary {'off' if a.no_canary else 'on'}")
    for method, r in rows.items():
        if r["canary"]:
            print(f"  {method} canary: waited {r['canary']['waited_s']:.0f} s, tolerance "
                  f"{r['canary']['tolerance']:.1%}, {r['canary']['canary_checks']} checks")
    print("| method | models | keys | exports | measuring | total | uncalibrated MAPE / +-10 % / tau "
          "| calibrated MAPE / +-10 % / tau |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for method, r in rows.items():
        u, c = r["raw"], r["calibrated"]
        print(f"| {method} | {r['models']} | {r['keys']} | {r['export_s']:.1f} s | {r['measure_s']:.1f} s "
              f"| {r['total_s']:.1f} s | {u['mape']:.1%} / {u['within_10']:.0%} / {u['kendall_tau']:.3f} "
              f"| {c['mape']:.1%} / {c['within_10']:.0%} / {c['kendall_tau']:.3f} |")
    print(f"one-op / trace building time: {doc['time_ratio_one_op_over_trace']:.1f}x")


if __name__ == "__main__":
    main()
