"""The ranking table: every strategy x weight sharing trained with the same steps on the ranking
benchmark, then scored against the shipped ground truth (``hwnas rank-check --ground-truth``).

    OMP_NUM_THREADS=1 python tools/bench/ranking_table.py --truth gratings-mbv2-w0.25-r16 \\
        --out runs/ranking_table [--epochs 4] [--batch-size 128] [--lr 0.2] [--strategies uniform,kshot]

Each run lives in OUT/<strategy>-<sharing>/ and is skipped when its score exists (the table
resumes). Every run trains in a child process of its own, so its peak resident memory (reported
per row) is its own. ``constrained`` draws MACs ranges over its default span; ``greedy`` runs
without its stopping rule so every strategy trains the same number of steps; ``kshot`` warms up
for ``--kshot-warmup`` epochs (K-shot NAS Sec. 5.1 warms up 5 of its epochs; scaled to the short
run); ``pgonas`` keeps its defaults (the rank-loss warm-up at 20/70 of the run, PGONAS Table 3).
Writes OUT/table.json and OUT/table.md and prints the table (training minutes are wall time on
this machine).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

STRATEGIES = ("uniform", "constrained", "greedy", "kshot", "pgonas")
SHARINGS = ("independent", "elastic")
#: figures from the papers (Kendall tau on NAS-Bench-201 CIFAR-10): SPOS Sec. 4.4 Table 8 and
#: K-shot NAS Sec. 5 Table 4
PAPERS = {"SPOS (NAS-Bench-201, CIFAR-10)": 0.55, "K-shot NAS (NAS-Bench-201, CIFAR-10)": 0.6264}


def _config(TrainConfig, gt, strategy: str, sharing: str, a):  # noqa: N803
    """The run's TrainConfig. ``constrained`` draws a random MACs range per step over its default
    span (the 1-99 % MACs of uniform paths, 8 bins, SPOS Sec. 3.2: the ground truth's own span
    reaches down to the all-identity subnet, a bin uniform draws almost never hit); ``greedy`` runs
    without its stopping rule, so every strategy trains the same steps; ``kshot`` warms up for
    ``--kshot-warmup`` epochs."""
    common = dict(space=gt.space["name"], width=gt.space["width"], resolution=gt.space["resolution"],
                  data=gt.data["name"], split_seed=int(gt.data.get("split_seed", 0)), strategy=strategy,
                  sharing=sharing, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, workers=0)
    opts = {"greedy": {"early_stop": False}, "kshot": {"warmup_epochs": a.kshot_warmup}}.get(strategy, {})
    return TrainConfig(**common, options=opts)


def _train_row(a, gt, strategy: str, sharing: str) -> None:
    """Train and score one strategy x sharing (in this child process) and write its table row."""
    from hwnas.ranking.metrics import top_k_found
    from hwnas.ranking.score import score_checkpoint
    from hwnas.train import TrainConfig, train_supernet

    run = a.out / f"{strategy}-{sharing}"
    cfg = _config(TrainConfig, gt, strategy, sharing, a)
    t0 = time.perf_counter()
    res = train_supernet(cfg, run, resume=(run / "last.pt").is_file(), quiet=True)
    train_s = time.perf_counter() - t0
    score = score_checkpoint(run / "last.pt", gt.path, calib_batches=a.calib_batches, out=run)
    row = {"strategy": strategy, "sharing": sharing, "steps": res.steps,
           "train_minutes": round(train_s / 60, 2), "score_seconds": round(score.seconds, 1),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           **{k: score.correlations[k] for k in ("kendall", "spearman", "pearson")},
           "top5_in_top10": score.top5_in_top10,
           # with a 10-subnet ground truth top-5 in top-10 is always 5: the table shows top-3 in top-3
           "top3_in_top3": top_k_found([r["standalone_top1"] for r in score.rows],
                                       [r["supernet_top1"] for r in score.rows], 3, 3),
           "supernet_top1_mean": float(sum(r["supernet_top1"] for r in score.rows) / len(score.rows)),
           "code": "strategy seam", "config": cfg.to_dict()}
    (run / "table_row.json").write_text(json.dumps(row, indent=2))


def main() -> None:
    from hwnas.ranking.truth import load_ground_truth

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truth", default="gratings-mbv2-w0.25-r16")
    ap.add_argument("--out", type=Path, default=Path("runs/ranking_table"))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--calib-batches", type=int, default=10)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--sharings", default=",".join(SHARINGS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--kshot-warmup", type=float, default=1.0, help="K-shot warm-up epochs (lambda = 1/K)")
    ap.add_argument("--row", default="", help=argparse.SUPPRESS)  # internal: train one STRATEGY/SHARING
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    gt = load_ground_truth(a.truth)
    if a.row:
        _train_row(a, gt, *a.row.split("/"))
        return
    rows = []
    for strategy in a.strategies.split(","):
        for sharing in a.sharings.split(","):
            done = a.out / f"{strategy}-{sharing}" / "table_row.json"
            if not done.is_file():
                subprocess.run([sys.executable, __file__, *sys.argv[1:], "--row", f"{strategy}/{sharing}"], check=True)
            rows.append(json.loads(done.read_text()))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "config"}), flush=True)
    summary = {"ground_truth": str(gt.path), "seed_to_seed": gt.seed_to_seed(),
               "macs_baseline": gt.macs_baseline(), "papers": PAPERS, "rows": rows}
    (a.out / "table.json").write_text(json.dumps(summary, indent=2))
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines = ["| strategy | sharing | steps | train min | peak memory | Kendall tau | Spearman | Pearson | "
             "top-3 in top-3 | mean inherited top-1 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['sharing']} | {r['steps']} | {r['train_minutes']:.1f} | "
                     f"{r.get('peak_rss_mib', 0):.0f} MiB | {fmt(r['kendall'])} | {fmt(r['spearman'])} | {fmt(r['pearson'])} | "
                     f"{r['top3_in_top3']}/3 | {100 * r['supernet_top1_mean']:.1f} % |")
    mb, ss = gt.macs_baseline(), gt.seed_to_seed()
    lines.append(f"| MACs alone (baseline) | | | | | {fmt(mb['kendall'])} | {fmt(mb['spearman'])} | "
                 f"{fmt(mb['pearson'])} | | |")
    lines.append(f"| seed vs seed (ceiling) | | | | | {fmt(ss['kendall'])} | {fmt(ss['spearman'])} | "
                 f"{fmt(ss['pearson'])} | | |")
    for name, tau in PAPERS.items():
        lines.append(f"| {name} | | | | | {tau:.2f} | | | | |")
    (a.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
