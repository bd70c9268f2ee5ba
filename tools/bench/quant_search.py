"""Mixed-precision search on ``digits`` (SPOS Table 6 in miniature): accuracy vs BitOps against kWkA.

1. trains a ``resnet18-mp`` supernet (small width and resolution) with the training stage's loop
   (``hwnas.train.loop.train_supernet``, uniform SPOS sampling of channels and bit pairs);
2. evaluates the uniform 2W2A / 3W3A / 4W4A baselines (1.0x channels; 3W3A is off the bit-pair grid
   and runs the shared weights at 3 bits) with inherited weights and recalibrated BN;
3. for each baseline's BitOps, runs the SPOS evolutionary search (``hwnas.search``, error objective
   on the search-val split, BitOps budget) and evaluates the best net;
4. prints the table (test-split accuracy) and writes ``quant_search.json`` and ``quant_search.png``.

Accuracies are with inherited supernet weights (no fine-tuning, SPOS Sec. 3.3 style), so they rank
architectures rather than report their stand-alone accuracy. Timings are not asserted.

    python tools/bench/quant_search.py --out /tmp/hwnas-quant --epochs 40
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/hwnas-quant-bench"))
    ap.add_argument("--space", default="resnet18-mp")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--pop", type=int, default=20)
    ap.add_argument("--gens", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="reuse a trained supernet in --out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    console = Console(width=max(Console().width, 110))

    from hwnas.data import load_data, take_batches
    from hwnas.io import atomic_write_json
    from hwnas.models import supernet_from_checkpoint
    from hwnas.quant.baselines import kwka_baselines, quant_report
    from hwnas.search import error_objective, run_search
    from hwnas.search.problem import problem_from_names
    from hwnas.supernet import recalibrate_bn
    from hwnas.train.config import TrainConfig
    from hwnas.train.evaluate import SubnetEvaluator, evaluate_model
    from hwnas.train.loop import CHECKPOINT, train_supernet

    args.out.mkdir(parents=True, exist_ok=True)
    run_dir = args.out / "supernet"
    t0 = time.perf_counter()
    if not (args.resume and (run_dir / CHECKPOINT).is_file()):
        cfg = TrainConfig(space=args.space, width=args.width, resolution=args.resolution, data="digits",
                          epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, workers=0,
                          seed=args.seed)
        res = train_supernet(cfg, run_dir, quiet=True)
        console.print(f"supernet: {res.steps} steps in {res.seconds:.0f} s, final loss {res.final_loss:.3f}")
    train_s = time.perf_counter() - t0
    net, _ = supernet_from_checkpoint(run_dir / CHECKPOINT)
    space = net.space

    data = load_data("digits", resolution=space.resolution, in_channels=space.in_channels)
    calib = take_batches(data.train_clean, 128, max_batches=4, seed=0)
    val = take_batches(data.search_val, 256)
    test = take_batches(data.test, 256)

    def test_accuracy(model: torch.nn.Module) -> float:
        recalibrate_bn(model, calib)
        return evaluate_model(model, test).top1

    baselines = kwka_baselines(space)
    searched = []
    t1 = time.perf_counter()
    evaluator = SubnetEvaluator(net, val, calib)
    for b in baselines:
        problem = problem_from_names(space, ["error"], {"searched_bitops": b.quantized_bitops},
                                     error=error_objective(evaluator))
        result = run_search(problem, "evolution", pop=args.pop, gens=args.gens, seed=args.seed,
                            progress=False)
        searched.append((f"searched <= {b.name}", result.best_genes, b.name))
    search_s = time.perf_counter() - t1
    rows = quant_report(space, baselines, searched, evaluate=test_accuracy, supernet=net)

    table = Table(title=f"{space.name} w{space.width} @{space.resolution}px on digits "
                        f"(test split, {sum(len(y) for _, y in test)} images; inherited weights)")
    for col in ("arch", "bits", "BitOps (total)", "BitOps (blocks)", "top-1"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["arch"], r["bits"], f"{r['bitops'] / 1e6:.1f} M", f"{r['quantized_bitops'] / 1e6:.2f} M",
                      f"{100 * r['accuracy']:.1f} %")
    console.print(table)
    console.print(f"supernet training {train_s:.0f} s, searches {search_s:.0f} s "
                  f"({evaluator.evaluations} subnets evaluated)")
    report = {"space": space.config(), "epochs": args.epochs, "pop": args.pop, "gens": args.gens,
              "rows": rows, "train_s": train_s, "search_s": search_s}
    atomic_write_json(args.out / "quant_search.json", report)
    _plot(rows, args.out / "quant_search.png", space.name)
    console.print(f"wrote {args.out / 'quant_search.json'} and {args.out / 'quant_search.png'}")


def _plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for kind, marker in (("baseline", "s"), ("searched", "o")):
        sel = [r for r in rows if r["kind"] == kind]
        ax.plot([r["quantized_bitops"] / 1e6 for r in sel], [100 * r["accuracy"] for r in sel],
                marker, label="kWkA" if kind == "baseline" else "searched (<= budget)")
        for r in sel:
            ax.annotate(r["arch"].replace("searched <= ", "s"), (r["quantized_bitops"] / 1e6, 100 * r["accuracy"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("BitOps of the quantized blocks (M)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{title}: mixed precision vs uniform kWkA")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
