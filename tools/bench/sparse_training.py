"""Training-time saving of SparseNAS (Sec. 3.3 / 5.5): training on the sparse set against uniform
training on the full space, at the same settings, on built-in data.

    OMP_NUM_THREADS=1 python tools/bench/sparse_training.py --work runs/sparsebench \\
        [--runs uniform-p3,sparse-n3,sparse-n2] [--eval-every 3] [--eval-members 50]

Runs (same space, data, epochs, batch, lr, seed, no distillation, no warm-up), each in
WORK/train-<name>/ (reused when finished):

* ``uniform-p3``: ``--strategy uniform --opt paths=3``: three uniform paths of the full space per step;
* ``sparse-n3``: ``--strategy sparse --opt n_sub=3`` (SparseNAS), ``sparse-n2``: n_sub 2 (SparseNAS-dagger);
* ``uniform-p2``: two uniform paths (the proxy's sampling at full length).

The runs train interleaved, ``--eval-every`` epochs of each in turn (``stop_after_epochs``, then
resume), so the load of this shared machine falls on all alike; after each chunk the same
``--eval-members`` members of the sparse set (seeded draw) are evaluated with inherited weights on
search-val after BN recalibration. Prints per run: training seconds (sum of the epochs' own
seconds: no evaluation, no process start), steps, seconds per step, the members' mean / median
top-1 at each evaluation, and the steps and seconds at which each run first reached the mean
top-1 uniform-p3 ends with; then the ratios against uniform-p3, with and without the SparseNAS
overhead (proxy + pairs + fit + sparse-set search, as far as measured by tools/bench/sparse_flow.py
in this work folder: the stage times are stored in WORK/stages.json when they run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sparse_flow import add_flow_args, ensure_sparse, flow_from_args, log, stages as flow_stages  # noqa: E402

RUNS = {"uniform-p3": ("uniform", {"paths": 3}), "uniform-p2": ("uniform", {"paths": 2}),
        "sparse-n3": ("sparse", {"n_sub": 3}), "sparse-n2": ("sparse", {"n_sub": 2})}


def epoch_seconds(run_dir: Path) -> tuple[list[float], list[int]]:
    secs, steps = [], []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("kind") == "epoch":
            secs.append(float(r["seconds"]))
            steps.append(int(r["step"]))
    return secs, steps


def evaluate(ckpt: Path, members: list[tuple[int, ...]]) -> list[float]:
    from hwnas.train.evaluate import SubnetEvaluator

    ev = SubnetEvaluator.from_checkpoint(ckpt, split="search-val")
    return [ev(g).top1 for g in members]


def train_runs(f, names: list[str], sparse_path: Path, epochs: int, every: int, members) -> dict[str, dict]:
    """Train every run in chunks of ``every`` epochs, interleaved (a chunk of each run in turn), so a
    change of the machine's load falls on all runs alike; evaluate the members after each chunk."""
    from hwnas.train.loop import train_supernet

    results: dict[str, dict] = {}
    todo = []
    for name in names:
        out = f.work / f"train-{name}"
        if (out / "bench.json").exists():
            results[name] = json.loads((out / "bench.json").read_text())
            continue
        if out.exists():
            import shutil

            shutil.rmtree(out)  # an interrupted bench: start the run again
        strategy, opts = RUNS[name]
        opts = dict(opts)
        if strategy == "sparse":
            opts["space_file"] = str(sparse_path)
        todo.append((name, out, strategy, opts, f.config(strategy=strategy, options=opts, epochs=epochs), []))
    e = 0
    while todo and e < epochs:
        k = min(every, epochs - e)
        for name, out, _, _, cfg, curve in todo:
            train_supernet(cfg, out, resume=e > 0, stop_after_epochs=k, quiet=True)
            t0 = time.perf_counter()
            acc = evaluate(out / "last.pt", members)
            secs, steps = epoch_seconds(out)
            curve.append({"epoch": e + k, "step": steps[-1], "train_s": sum(secs), "mean": float(np.mean(acc)),
                          "median": float(np.median(acc)), "eval_s": time.perf_counter() - t0, "top1": acc})
            log(f"{name} epoch {e + k}/{epochs}: step {steps[-1]}, train {sum(secs):.0f} s, members' mean "
                f"top-1 {100 * curve[-1]['mean']:.2f} %")
        e += k
    for name, out, strategy, opts, _, curve in todo:
        secs, steps = epoch_seconds(out)
        res = {"name": name, "strategy": strategy, "options": {k: v for k, v in opts.items() if k != "space_file"},
               "train_s": sum(secs), "steps": steps[-1], "s_per_step": sum(secs) / steps[-1], "curve": curve}
        (out / "bench.json").write_text(json.dumps(res, indent=1) + "\n")
        results[name] = res
    return {n: results[n] for n in names}


def first_reaching(curve: list[dict], target: float) -> dict | None:
    return next((c for c in curve if c["mean"] >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flow_args(ap)
    ap.add_argument("--runs", default="uniform-p3,sparse-n3,sparse-n2")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of every run (default: the dataset's recipe)")
    ap.add_argument("--eval-every", type=int, default=3)
    ap.add_argument("--eval-members", type=int, default=50)
    a = ap.parse_args()
    from hwnas.train.recipes import recipe_for

    names = a.runs.split(",")
    bad = [n for n in names if n not in RUNS]
    if bad or "uniform-p3" not in names:
        sys.exit(f"--runs: unknown {bad} or no uniform-p3 (the reference); allowed: {', '.join(RUNS)}")
    f = flow_from_args(a)
    t_bench = time.perf_counter()
    sparse, _ = ensure_sparse(f, a.pairs, a.buckets, a.per_bucket)
    stages = flow_stages(f)
    rng = np.random.default_rng(a.seed)
    all_members = sparse.members()
    pick = rng.choice(len(all_members), size=min(a.eval_members, len(all_members)), replace=False)
    members = [all_members[i] for i in sorted(pick)]
    epochs = a.epochs or recipe_for(a.data).epochs
    log(f"sparse set {len(sparse)} members; evaluating {len(members)} of them; {epochs} epochs per run")
    results = train_runs(f, names, f.sparse, epochs, a.eval_every, members)

    ref = results["uniform-p3"]
    target = ref["curve"][-1]["mean"]
    overhead = sum(stages.get(k, 0.0) for k in ("proxy", "pairs", "fit", "space"))
    print(f"\nsparse vs uniform training: {a.space} w{a.width} r{a.resolution} {a.data}, {a.sharing} sharing, "
          f"{epochs} epochs, sparse set {len(sparse)} members ({a.buckets} buckets x {a.per_bucket}), "
          f"{len(members)} of them evaluated (search-val, BN recalibrated); "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} cores (shared)")
    print(f"SparseNAS overhead measured in this work folder: " +
          ", ".join(f"{k} {stages[k]:.1f} s" for k in ("proxy", "pairs", "fit", "space") if k in stages))
    print("| run | steps | train s | s / step | members' mean top-1 | median | best | reaches uniform-p3's "
          "final mean at step (train s) | train s / uniform-p3 | s per step / uniform-p3 | "
          "time to uniform-p3's final mean / uniform-p3 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n, r in results.items():
        c = r["curve"][-1]
        hit = first_reaching(r["curve"], target)
        reach = "-" if hit is None else f"{hit['step']} ({hit['train_s']:.0f} s)"
        ttt = "-" if hit is None else f"{hit['train_s'] / ref['train_s']:.2f}"
        print(f"| {n} | {r['steps']} | {r['train_s']:.1f} | {r['s_per_step']:.3f} | {100 * c['mean']:.2f} % | "
              f"{100 * c['median']:.2f} % | {100 * max(c['top1']):.2f} % | {reach} | "
              f"{r['train_s'] / ref['train_s']:.2f} | {r['s_per_step'] / ref['s_per_step']:.2f} | {ttt} |")
    print("\nmembers' mean top-1 (%) at each evaluation (epoch: run ...)")
    for i, c0 in enumerate(ref["curve"]):
        print(f"  epoch {c0['epoch']:>3}: " + "  ".join(
            f"{n} {100 * r['curve'][i]['mean']:.2f}" for n, r in results.items() if i < len(r["curve"])))
    for n, r in results.items():
        if r["strategy"] == "sparse":
            tot = r["train_s"] + overhead
            print(f"{n}: with the SparseNAS overhead {tot:.0f} s = {tot / ref['train_s']:.2f} x uniform-p3's "
                  f"{ref['train_s']:.0f} s; per member, {n} beats uniform-p3 on "
                  f"{sum(x > y for x, y in zip(r['curve'][-1]['top1'], ref['curve'][-1]['top1']))}"
                  f"/{len(members)} (ties {sum(x == y for x, y in zip(r['curve'][-1]['top1'], ref['curve'][-1]['top1']))})")
    print(f"\nbench wall time {time.perf_counter() - t_bench:.0f} s")


if __name__ == "__main__":
    main()
