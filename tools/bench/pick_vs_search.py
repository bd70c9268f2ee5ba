"""Search-free selection against a full search (SparseNAS Sec. 5.6, Table 6: 13 ms per constraint
without evolutionary search): ``hwnas pick`` against ``hwnas search`` (NSGA-II, the project's
default population 50 x 20 generations, objectives error + MACs) on the same MACs budgets and the
same supernet checkpoint, in wall time and in the accuracy of what each finds.

    OMP_NUM_THREADS=1 python tools/bench/pick_vs_search.py --work runs/sparsebench \\
        [--budgets 0.33,0.66] [--uniform]

Needs WORK/train-sparse-n3/last.pt (tools/bench/sparse_training.py trains it). Budgets are MACs
values, or fractions in (0, 1) placing them between the sparse set's smallest and largest member.
Both commands run as child processes (``hwnas pick --json``, ``hwnas search --json``), timed from
start to exit, so both carry the same process start. ``pick`` runs twice per budget: cold (the
first call evaluates the feasible members not in its cache; the cache is deleted at the start, and
budgets run from the smallest, so a later budget evaluates only members the earlier ones did not
reach) and warm (a lookup; its own ``select_seconds`` is the selection alone, the paper's 13 ms
figure). What each finds is rated by the supernet on search-val (what both selected on: BN
recalibrated with 20 batches, the whole split) and, for an unbiased comparison, on the test split.
``--uniform`` also runs the search on WORK/train-uniform-p3/last.pt (uniform training on the full
space, then NSGA-II: the flow SparseNAS replaces).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sparse_flow import add_flow_args, flow_from_args, log  # noqa: E402


def cli(args: list[str]) -> tuple[dict, float]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"hwnas {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return json.loads(p.stdout), wall


def search(ckpt: Path, budget: int, out: Path, pop: int, gens: int) -> tuple[dict, float]:
    d, wall = cli(["search", "--checkpoint", str(ckpt), "--max-macs", str(budget), "--objectives", "error,macs",
                   "--pop", str(pop), "--gens", str(gens), "--out", str(out), "--json"])
    doc = json.loads((out / "pareto.json").read_text())
    best = doc["best"]
    scale = 100.0 if doc["units"].get("error") == "%" else 1.0
    return {"genes": best["genes"], "top1": 1 - best["metrics"]["error"] / scale, "macs": best["metrics"]["macs"],
            "n_evaluated": doc["n_evaluated"]}, wall


def report(rows: list[dict], m: dict) -> None:
    print(f"\npick vs NSGA-II search ({m['pop']} x {m['gens']}, error + MACs) on {m['checkpoint']} "
          f"({m['members']} sparse members; {m['setting']}); "
          f"OMP_NUM_THREADS={m['omp']}, {m['cores']} cores (shared); "
          "wall seconds include the process start")
    print("| budget MACs | method | wall s | selection ms | evaluated | MACs | top-1 search-val | top-1 test |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        p, s = r["pick"], r["search"]
        print(f"| {r['budget']} | pick, cold | {p['cold_wall_s']:.2f} | - | {p['cold_evaluated']} "
              f"({p['cold_eval_s']:.1f} s) | | | |")
        print(f"| {r['budget']} | pick, warm | {p['warm_wall_s']:.2f} | {1000 * p['select_seconds']:.2f} | 0 | "
              f"{int(p['macs'])} | {100 * p['top1']:.2f} % | {100 * p['test_top1']:.2f} % |")
        print(f"| {r['budget']} | search, same supernet | {s['wall_s']:.1f} | - | {s['n_evaluated']} | "
              f"{int(s['macs'])} | {100 * s['top1']:.2f} % | {100 * s['test_top1']:.2f} % |")
        if "uniform_search" in r:
            u = r["uniform_search"]
            print(f"| {r['budget']} | search, uniform-p3 supernet | {u['wall_s']:.1f} | - | {u['n_evaluated']} | "
                  f"{int(u['macs'])} | {100 * u['top1']:.2f} % | {100 * u['test_top1']:.2f} % |")
    print()
    for r in rows:
        p, s = r["pick"], r["search"]
        print(f"budget {r['budget']}: search wall / pick warm wall {s['wall_s'] / p['warm_wall_s']:.0f} x, "
              f"/ pick cold wall {s['wall_s'] / p['cold_wall_s']:.1f} x, / pick selection "
              f"{s['wall_s'] / p['select_seconds']:.0f} x; top-1 pick - search: search-val "
              f"{100 * (p['top1'] - s['top1']):+.2f}, test {100 * (p['test_top1'] - s['test_top1']):+.2f} points")
        if "uniform_search" in r:
            u = r["uniform_search"]
            print(f"budget {r['budget']}: uniform training + search: search wall / pick warm wall "
                  f"{u['wall_s'] / p['warm_wall_s']:.0f} x; top-1 pick - it: search-val "
                  f"{100 * (p['top1'] - u['top1']):+.2f}, test {100 * (p['test_top1'] - u['test_top1']):+.2f} points")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flow_args(ap)
    ap.add_argument("--budgets", default="0.33,0.66")
    ap.add_argument("--pop", type=int, default=50)
    ap.add_argument("--gens", type=int, default=20)
    ap.add_argument("--uniform", action="store_true")
    ap.add_argument("--report", action="store_true", help="print the table of WORK/pick_vs_search.json again")
    a = ap.parse_args()
    if a.report:
        d = json.loads((a.work / "pick_vs_search.json").read_text())
        report(d["rows"], d["meta"])
        return
    from hwnas.spaces.sparse_set import load_sparse_set
    from hwnas.train.evaluate import SubnetEvaluator

    f = flow_from_args(a)
    ckpt = f.work / "train-sparse-n3" / "last.pt"
    if not (f.work / "train-sparse-n3" / "bench.json").exists():
        sys.exit(f"{ckpt} is not trained yet: run tools/bench/sparse_training.py --work {f.work} first")
    sparse = load_sparse_set(f.sparse)
    lo, hi = float(sparse.macs.min()), float(sparse.macs.max())
    budgets = sorted(int(lo + float(b) * (hi - lo)) if float(b) < 1 else int(float(b))
                     for b in a.budgets.split(","))
    (ckpt.parent / "sparse_accuracy.json").unlink(missing_ok=True)
    test_ev = {}

    def test_top1(c: Path, genes) -> float:
        if c not in test_ev:
            test_ev[c] = SubnetEvaluator.from_checkpoint(c, split="test")
        return test_ev[c](tuple(int(v) for v in genes)).top1

    rows = []
    t_bench = time.perf_counter()
    for b in budgets:
        log(f"budget {b} MACs: pick")
        cold, cold_wall = cli(["pick", "--checkpoint", str(ckpt), "--max-macs", str(b), "--json"])
        warm, warm_wall = cli(["pick", "--checkpoint", str(ckpt), "--max-macs", str(b), "--json"])
        assert warm["genes"] == cold["genes"] and warm["evaluated"] == 0
        log(f"budget {b} MACs: search on the sparse supernet")
        s, s_wall = search(ckpt, b, f.work / f"search-sparse-{b}", a.pop, a.gens)
        row = {"budget": b, "pick": {**warm, "cold_wall_s": cold_wall, "cold_evaluated": cold["evaluated"],
                                     "cold_eval_s": cold["eval_seconds"], "warm_wall_s": warm_wall,
                                     "test_top1": test_top1(ckpt, warm["genes"])},
               "search": {**s, "wall_s": s_wall, "test_top1": test_top1(ckpt, s["genes"])}}
        if a.uniform:
            uck = f.work / "train-uniform-p3" / "last.pt"
            log(f"budget {b} MACs: search on the uniform supernet")
            u, u_wall = search(uck, b, f.work / f"search-uniform-{b}", a.pop, a.gens)
            row["uniform_search"] = {**u, "wall_s": u_wall, "test_top1": test_top1(uck, u["genes"])}
        rows.append(row)

    meta = {"pop": a.pop, "gens": a.gens, "checkpoint": str(ckpt), "members": len(sparse),
            "setting": f"{a.space} w{a.width} r{a.resolution} {a.data}",
            "omp": os.environ.get("OMP_NUM_THREADS", "unset"), "cores": os.cpu_count()}
    report(rows, meta)
    print(f"\nbench wall time {time.perf_counter() - t_bench:.0f} s")
    (f.work / "pick_vs_search.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
