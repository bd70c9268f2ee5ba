"""CLI commands of the training stage: ``hwnas train``, ``hwnas eval``, ``hwnas rank-check``.

Thin wrappers: parse, build a :class:`~hwnas.train.config.TrainConfig`, call the library, print.
Options left out keep the config defaults (or, with ``--resume``, the run's stored values).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)

Opt = typer.Option


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("eval")(eval_cmd)
    app.command("rank-check")(rank_check_cmd)


def train_cmd(
    out_dir: Annotated[Path, Opt("--out", "-o", help="Run folder (runs/NAME): config, metrics, last.pt.")],
    space: Annotated[Optional[str], Opt("--space", "-s", help="Search space (default mbv2).")] = None,
    data: Annotated[Optional[str], Opt(help="digits, fake, cifar10, cifar100 or imagefolder:PATH (default digits).")] = None,
    data_root: Annotated[Optional[Path], Opt(help="Folder holding the dataset files (CIFAR).")] = None,
    download: Annotated[Optional[bool], Opt("--download", help="Fetch CIFAR into --data-root (opt-in).")] = None,
    strategy: Annotated[Optional[str], Opt(help="uniform (SPOS), constrained (SPOS uniform-constraint) or greedy (GreedyNAS).")] = None,
    sharing: Annotated[Optional[str], Opt(help="Weight sharing: independent (SPOS/GreedyNAS candidate blocks, default) or elastic (OFA: one block per layer sliced by kernel and width; learns in far fewer steps).")] = None,
    epochs: Annotated[Optional[int], Opt(help="Epochs (default 120, SPOS).")] = None,
    batch_size: Annotated[Optional[int], Opt(help="Batch size per process (default 1024, GreedyNAS).")] = None,
    lr: Annotated[Optional[float], Opt(help="Peak learning rate (default 0.12 x global batch / 1024).")] = None,
    momentum: Annotated[Optional[float], Opt(help="SGD Nesterov momentum (default 0.9).")] = None,
    weight_decay: Annotated[Optional[float], Opt(help="Weight decay on conv/linear weights (default 4e-5).")] = None,
    label_smoothing: Annotated[Optional[float], Opt(help="Label smoothing (default 0.1).")] = None,
    workers: Annotated[Optional[int], Opt(help="Data-loader worker processes (default 2).")] = None,
    amp: Annotated[Optional[bool], Opt("--amp/--no-amp", help="Mixed precision (CUDA only).")] = None,
    resume: Annotated[bool, Opt("--resume", help="Continue the run in --out from its last.pt.")] = False,
    seed: Annotated[Optional[int], Opt(help="Seed of weights, data order and paths (default 0).")] = None,
    width: Annotated[Optional[float], Opt(help="Width multiplier of the space.")] = None,
    resolution: Annotated[Optional[int], Opt(help="Input resolution.")] = None,
    device: Annotated[Optional[str], Opt(help="cpu or cuda (default: cuda when available).")] = None,
    steps_per_epoch: Annotated[Optional[int], Opt(help="Cap on batches per epoch (quick runs).")] = None,
    log_every: Annotated[Optional[int], Opt(help="Log a metrics line every N steps (default 20).")] = None,
    macs_range: Annotated[Optional[str], Opt(help="constrained: MACs range LO,HI, e.g. 2M,4M.")] = None,
    greedy_m: Annotated[Optional[int], Opt(help="greedy: paths sampled per round (default 10).")] = None,
    greedy_k: Annotated[Optional[int], Opt(help="greedy: paths kept and trained per round (default 5).")] = None,
    pool_size: Annotated[Optional[int], Opt(help="greedy: candidate pool size (default min(1000, steps/epoch)).")] = None,
    score_batch: Annotated[Optional[int], Opt(help="greedy: search-val images used to score paths (default 1000).")] = None,
    warmup_steps: Annotated[Optional[float], Opt(help="greedy: uniform warm-up steps, or a fraction < 1 of all steps (default min(10K, 15 %)).")] = None,
    eps_max: Annotated[Optional[float], Opt(help="greedy: final pool sampling probability (default 0.8).")] = None,
    stop_alpha: Annotated[Optional[float], Opt(help="greedy: stop when the pool update frequency <= alpha (default 0.08).")] = None,
    early_stop: Annotated[Optional[bool], Opt("--early-stop/--no-early-stop", help="greedy: use the stopping principle.")] = None,
    stop_after_epochs: Annotated[Optional[int], Opt(help="End this invocation after N epochs (continue with --resume).")] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar or log lines.")] = False,
) -> None:
    """Train a one-shot supernet (SPOS uniform / uniform-constraint, GreedyNAS greedy)."""
    from hwnas.errors import HwnasError
    from hwnas.train.config import TrainConfig, parse_range
    from hwnas.train.loop import TrainingInterrupted, read_run_config, train_supernet

    given = {
        "space": space, "data": data, "data_root": None if data_root is None else str(data_root),
        "download": download, "strategy": strategy, "sharing": sharing, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
        "label_smoothing": label_smoothing, "workers": workers, "amp": amp, "seed": seed,
        "width": width, "resolution": resolution, "steps_per_epoch": steps_per_epoch,
        "log_every": log_every, "macs_range": None if macs_range is None else parse_range(macs_range),
        "greedy_m": greedy_m, "greedy_k": greedy_k, "pool_size": pool_size, "score_batch": score_batch,
        "warmup_steps": warmup_steps, "eps_max": eps_max, "stop_alpha": stop_alpha,
        "early_stop": early_stop,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if stop_after_epochs is not None and stop_after_epochs < 1:
        raise HwnasError(f"--stop-after-epochs must be >= 1, got {stop_after_epochs}")
    if resume:
        if not (out_dir / "last.pt").is_file():
            raise HwnasError(f"--resume: {out_dir / 'last.pt'} does not exist (nothing to resume)")
        config = read_run_config(out_dir).replace(**given)
    else:
        config = TrainConfig(**given)
    try:
        result = train_supernet(config, out_dir, resume=resume, device=device, quiet=quiet,
                                stop_after_epochs=stop_after_epochs)
    except TrainingInterrupted as exc:
        err.print(f"[yellow]interrupted:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=exc.exit_code) from None
    if quiet or result.rank != 0:
        return
    t = Table(title=f"supernet run {result.run_dir}")
    for col in ("epochs", "steps", "last loss", "early stop", "minutes"):
        t.add_column(col)
    t.add_row(str(result.epochs_done), str(result.steps),
              "-" if result.final_loss is None else f"{result.final_loss:.4f}",
              result.stop_reason or "no", f"{result.seconds / 60:.1f}")
    out.print(t)


def eval_cmd(
    checkpoint: Annotated[Path, Opt(help="Supernet training checkpoint (runs/NAME/last.pt).")],
    genes: Annotated[str, Opt("--genes", "-g", help="Comma-separated ints or @file.json.")],
    split: Annotated[str, Opt(help="search-val, test or train-clean.")] = "test",
    calib_batches: Annotated[int, Opt(help="Training batches for BN recalibration (SPOS; 0: none).")] = 20,
    batch_size: Annotated[int, Opt(help="Evaluation batch size.")] = 256,
    data_root: Annotated[Optional[Path], Opt(help="Dataset folder, if it moved since training.")] = None,
    device: Annotated[Optional[str], Opt(help="cpu or cuda (default: cuda when available).")] = None,
    json_out: Annotated[bool, Opt("--json", help="Print JSON.")] = False,
) -> None:
    """Evaluate one subnet with inherited supernet weights (after BN recalibration)."""
    from hwnas.arch import parse_genes
    from hwnas.train.evaluate import SubnetEvaluator

    ev = SubnetEvaluator.from_checkpoint(checkpoint, split=split, batch_size=batch_size,
                                         calib_batches=calib_batches, device=device,
                                         data_root=None if data_root is None else str(data_root))
    g = parse_genes(genes, ev.space)
    r = ev(g)
    if json_out:
        typer.echo(json.dumps({"genes": list(g), "split": split, **r.to_dict()}))
        return
    out.print(f"{split}: top-1 {100 * r.top1:.2f} %  top-5 {100 * r.top5:.2f} %  loss {r.loss:.4f}  "
              f"({r.n} images, BN recalibrated on {calib_batches} batches)", highlight=False)


def rank_check_cmd(
    checkpoint: Annotated[Path, Opt(help="Supernet training checkpoint (runs/NAME/last.pt).")],
    n: Annotated[int, Opt("--n", "-n", help="Number of random subnets.")] = 20,
    epochs: Annotated[int, Opt(help="Stand-alone training epochs per subnet.")] = 5,
    out_dir: Annotated[Optional[Path], Opt("--out", "-o", help="Output folder (default: RUN/rank_check).")] = None,
    seed: Annotated[int, Opt(help="Seed of the subnet sample and of stand-alone training.")] = 0,
    sample: Annotated[str, Opt(help="uniform (random subnets) or spread (evenly over the space's MACs range).")] = "uniform",
    seeds: Annotated[int, Opt(help="Stand-alone trainings per subnet (mean as ground truth; >= 2 also reports the seed-to-seed noise ceiling).")] = 1,
    calib_batches: Annotated[int, Opt(help="Training batches for BN recalibration (SPOS).")] = 20,
    data_root: Annotated[Optional[Path], Opt(help="Dataset folder, if it moved since training.")] = None,
    device: Annotated[Optional[str], Opt(help="cpu or cuda (default: cuda when available).")] = None,
    ground_truth: Annotated[Optional[str], Opt(help="Score against a ground-truth file (or the name of a shipped one, e.g. gratings-mbv2-w0.25-r16): no stand-alone training; --n/--epochs/--seeds/--sample do not apply.")] = None,
    json_out: Annotated[bool, Opt("--json", help="Print the result as JSON (with --ground-truth).")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Rank correlation of supernet (inherited-weight) vs stand-alone accuracy of N random subnets."""
    from hwnas.train.rank_check import rank_check

    if ground_truth is not None:
        _rank_check_truth(checkpoint, ground_truth, out_dir, calib_batches, data_root, device, json_out)
        return
    if json_out:
        from hwnas.errors import HwnasError

        raise HwnasError("--json needs --ground-truth (the sampled check writes rank_check.json)")

    r = rank_check(checkpoint, n=n, epochs=epochs, out=out_dir, seed=seed, seeds=seeds, sample=sample,
                   calib_batches=calib_batches,
                   data_root=None if data_root is None else str(data_root), device=device, quiet=quiet)
    t = Table(title=f"ranking check: {n} {sample} subnets, {epochs} stand-alone epochs x {seeds} "
                    f"seed(s), split search-val")
    for col in ("metric", "Kendall tau", "Spearman rho", "Pearson r"):
        t.add_column(col)
    rows = [(f"supernet {name}", c) for name, c in r.correlations.items()]
    rows += [("baseline: MACs (top1)" if name == "macs" else "ceiling: seed vs seed (top1)", c)
             for name, c in r.baselines.items()]
    for name, c in rows:
        t.add_row(name, *(("-" if c[k] is None else f"{c[k]:.3f}") for k in ("kendall", "spearman", "pearson")))
    out.print(t)
    out.print(f"wrote {r.csv_path}, {r.plot_path}, {r.json_path}", highlight=False)


def _rank_check_truth(checkpoint: Path, ground_truth: str, out_dir: Optional[Path], calib_batches: int,
                      data_root: Optional[Path], device: Optional[str], json_out: bool) -> None:
    from hwnas.ranking.score import score_checkpoint

    r = score_checkpoint(checkpoint, ground_truth, calib_batches=calib_batches, out=out_dir,
                         data_root=None if data_root is None else str(data_root), device=device)
    if json_out:
        typer.echo(json.dumps(r.to_dict()))
        return
    t = Table(title=f"ranking vs ground truth {r.truth.path.name} ({r.truth.describe()}, "
                    f"{len(r.rows)} subnets; supernet on {r.split})")
    for col in ("predictor", "Kendall tau", "Spearman rho", "Pearson r", "top-5 in top-10"):
        t.add_column(col)
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for name, c, k in (("supernet", r.correlations, r.top5_in_top10),
                       ("baseline: MACs", r.macs_baseline, r.macs_top5_in_top10),
                       ("ceiling: seed vs seed", r.seed_to_seed, None)):
        t.add_row(name, *(fmt(c[m]) for m in ("kendall", "spearman", "pearson")),
                  "-" if k is None else f"{k}/5")
    out.print(t)
    out.print(f"wrote {r.csv_path}, {r.plot_path}, {r.json_path} ({r.seconds:.0f} s)", highlight=False)
