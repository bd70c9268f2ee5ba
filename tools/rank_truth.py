"""Build (or resume) a ranking ground truth: stand-alone accuracies of subnets spread over a space's
MACs range, trained once per seed with one fixed recipe (see docs/ranking.md).

    OMP_NUM_THREADS=1 python tools/rank_truth.py --space mbv2 --width 0.25 --resolution 16 \\
        --out hwnas/ground_truth/gratings-mbv2-w0.25-r16.json

Finished trainings are appended to OUT.partial.jsonl; rerunning the same command resumes. Run one
at a time: the recipe's figures were measured with one thread.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch


def main(argv: list[str] | None = None) -> int:
    from hwnas.errors import HwnasError
    from hwnas.ranking.standalone import StandaloneRecipe
    from hwnas.ranking.truth import build_ground_truth

    d = StandaloneRecipe()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", required=True)
    ap.add_argument("--width", type=float, required=True)
    ap.add_argument("--resolution", type=int, required=True)
    ap.add_argument("--data", default="gratings")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--stride", type=int, default=1,
                    help="keep every k-th of the n spread subnets (resume later with 1 for the rest)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    ap.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    ap.add_argument("--data-seed", type=int, default=None,
                    help="one data order for every training (seeds then vary only the initial weights)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        recipe = StandaloneRecipe(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                                  warmup_steps=a.warmup_steps, label_smoothing=a.label_smoothing,
                                  data_seed=a.data_seed)
        seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
        t0 = time.perf_counter()
        gt = build_ground_truth(a.space, width=a.width, resolution=a.resolution, data=a.data, n=a.n,
                                seeds=seeds, recipe=recipe, out=a.out, sample_seed=a.sample_seed,
                                split=a.split, stride=a.stride, log=lambda m: print(m, flush=True))
    except HwnasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = gt.summary()
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"wrote {a.out}: {s['n']} subnets, top-1 {100 * s['top1_min']:.2f}-{100 * s['top1_max']:.2f} % "
          f"(range {s['top1_range_points']:.1f} points), seed-to-seed Kendall "
          f"{fmt(s['seed_to_seed']['kendall'])}, MACs Kendall {fmt(s['macs_baseline']['kendall'])}, "
          f"{time.perf_counter() - t0:.0f} s this run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
