"""Time of an end-to-end measurement of N subnets on the host (what ``hwnas lut validate --n N``,
``lut calibrate`` and ``lut fit --n`` spend), and where it goes: exporting the subnets vs timing them.

Two variants, each on the same N random subnets of a space, each in an empty model cache and an
empty measurement store (nothing is reused):

* ``before``: every subnet converted as the measurement path did before (no BatchNorm folding,
  one at a time in this process);
* ``after``: the current path (BatchNorm folded before conversion, converted in a process pool of
  one worker per core, ``hwnas.latency.opmodels``).

Both then measure in the usual rounds (``hwnas.latency.validate.measure_subnets``). Prints the
export seconds, the measuring seconds and the ratio, and checks that both exports hold the same
operators (type and count) for every subnet.

Usage: OMP_NUM_THREADS=1 python tools/bench/e2e_export.py [--n 30] [--runtime tflite]
[--variants before,after]
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

import numpy as np  # noqa: E402


def _ops(path: Path) -> list[str]:
    if path.suffix == ".onnx":
        import onnx

        return sorted(n.op_type for n in onnx.load(str(path)).graph.node)
    from ai_edge_litert.interpreter import Interpreter

    return sorted(o["op_name"] for o in Interpreter(model_path=str(path))._get_ops_details())  # noqa: SLF001


def run(variant: str, genes: list[tuple[int, ...]], space, runtime: str, tmp: Path) -> dict:
    import hwnas.latency.opmodels as om
    from hwnas.devices.profiles import load_profile
    from hwnas.latency.build import device_runner
    from hwnas.latency.validate import EndToEndStore, measure_subnets

    cache = om.SubnetModelCache(space, runtime, cache_dir=tmp / variant / "cache")
    saved_fold = om.fold_batchnorm
    if variant == "before":
        om.fold_batchnorm = lambda model, sample: 0
    try:
        t0 = time.perf_counter()
        cache.get_many(genes, workers=1 if variant == "before" else None)
        t_export = time.perf_counter() - t0
    finally:
        om.fold_batchnorm = saved_fold
    profile = load_profile("host")
    runner = device_runner(profile, runtime)
    store = EndToEndStore(tmp / variant / "store.e2e.json")
    t0 = time.perf_counter()
    ms = measure_subnets(runner, space, genes, runtime, store, threads=profile.cpu.default_threads, cache=cache)
    t_measure = time.perf_counter() - t0
    return {"variant": variant, "export_s": t_export, "measure_s": t_measure, "total_s": t_export + t_measure,
            "workers": 1 if variant == "before" else om.export_workers(len(genes), runtime),
            "latency_ms": ms.tolist(), "ops": {",".join(map(str, g)): _ops(cache.path_for(g)) for g in genes}}


def main() -> None:
    from hwnas.spaces import create_space

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--space", default="mbv2")
    ap.add_argument("--width", type=float, default=0.35)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--runtime", default="tflite")
    ap.add_argument("--variants", default="before,after")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = ap.parse_args()
    space = create_space(a.space, width=a.width, resolution=a.resolution, num_classes=10)
    rng = np.random.default_rng(a.seed)
    genes = list(dict.fromkeys(tuple(int(v) for v in space.sample(rng)) for _ in range(a.n)))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in a.variants.split(","):
            results[v] = run(v, genes, space, a.runtime, Path(tmp))
            r = results[v]
            print(f"{v:>6}: {len(genes)} subnets ({a.space} w{a.width:g} r{a.resolution}, {a.runtime}): export "
                  f"{r['export_s']:.1f} s ({r['export_s'] / len(genes):.2f} s per subnet, {r['workers']} "
                  f"process(es)), measure {r['measure_s']:.1f} s, total {r['total_s']:.1f} s", flush=True)
    if "before" in results and "after" in results:
        b, f = results["before"], results["after"]
        same = all(b["ops"][k] == f["ops"][k] for k in b["ops"])
        lat = np.asarray(f["latency_ms"]) / np.asarray(b["latency_ms"])
        print(f"ratio before / after: export {b['export_s'] / f['export_s']:.2f}x, total "
              f"{b['total_s'] / f['total_s']:.2f}x; same operators in every file: {same}; measured latency "
              f"after / before: median {np.median(lat):.3f} (range {lat.min():.3f}-{lat.max():.3f})")
    print(f"cores: {os.cpu_count()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load average at the end: {os.getloadavg()[0]:.2f}")
    if a.json is not None:
        a.json.write_text(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "ops"} for k, v in results.items()},
                                     indent=2))


if __name__ == "__main__":
    main()
