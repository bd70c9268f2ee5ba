"""CLI of the SparseNAS flow: ``hwnas sparse proxy | teacher | pairs | fit | space`` and ``hwnas pick``.

Training on the sparse space itself is ``hwnas train --strategy sparse --sparse-space FILE``.
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

sparse_app = typer.Typer(no_args_is_help=True, help="SparseNAS: proxy supernet, early predictor, sparse space.")


def register(app: typer.Typer) -> None:
    app.add_typer(sparse_app, name="sparse")
    app.command("pick")(pick_cmd)


def _config(space, width, resolution, data, epochs, batch_size, lr, seed, steps_per_epoch, workers, **kw):
    from hwnas.train.config import TrainConfig

    given = {"space": space, "width": width, "resolution": resolution, "data": data, "epochs": epochs,
             "batch_size": batch_size, "lr": lr, "seed": seed, "steps_per_epoch": steps_per_epoch,
             "workers": workers, **kw}
    return TrainConfig(**{k: v for k, v in given.items() if v is not None})


SpaceO = Annotated[str, Opt("--space", "-s", help="Search space (see `hwnas spaces`).")]
WidthO = Annotated[Optional[float], Opt(help="Width multiplier of the space.")]
ResO = Annotated[Optional[int], Opt(help="Input resolution.")]
DataO = Annotated[str, Opt(help="digits, gratings, fake, cifar10, cifar100 or imagefolder:PATH.")]
EpochsO = Annotated[Optional[int], Opt(help="Epochs (default: the SparseNAS proportion of the dataset's recipe).")]
BatchO = Annotated[Optional[int], Opt(help="Batch size (default: the dataset's recipe).")]
LrO = Annotated[Optional[float], Opt(help="Peak learning rate (default: the dataset's recipe).")]
StepsO = Annotated[Optional[int], Opt(help="Cap on batches per epoch (quick runs).")]
WorkersO = Annotated[Optional[int], Opt(help="Data-loader workers (default 2).")]
TorchDevO = Annotated[Optional[str], Opt(help="Torch device: cpu or cuda (default: cuda when available).")]


@sparse_app.command("proxy")
def proxy_cmd(
    out_dir: Annotated[Path, Opt("--out", "-o", help="Run folder of the proxy supernet.")],
    space: SpaceO = "mbv2", width: WidthO = None, resolution: ResO = None, data: DataO = "digits",
    epochs: EpochsO = None, batch_size: BatchO = None, lr: LrO = None,
    sharing: Annotated[str, Opt(help="Weight sharing: independent or elastic.")] = "independent",
    seed: Annotated[int, Opt(help="Seed.")] = 0, steps_per_epoch: StepsO = None, workers: WorkersO = None,
    torch_device: TorchDevO = None, quiet: Annotated[bool, Opt("--quiet", "-q")] = False,
) -> None:
    """Train the proxy supernet: uniform sampling, 2 paths per batch, 30/150 of the recipe's epochs (SparseNAS Sec. 5.2.1)."""
    from hwnas.io import check_writable_dir
    from hwnas.sparse.schedule import PROXY_PATHS, proxy_epochs
    from hwnas.train.loop import train_supernet

    check_writable_dir(out_dir)  # before the data is loaded
    config = _config(space, width, resolution, data, epochs or proxy_epochs(data), batch_size, lr, seed,
                     steps_per_epoch, workers, strategy="uniform", options={"paths": PROXY_PATHS},
                     sharing=sharing)
    r = train_supernet(config, out_dir, torch_device=torch_device, quiet=quiet)
    if not quiet:
        out.print(f"proxy supernet {out_dir / 'last.pt'}: {r.epochs_done} epochs, {r.steps} steps, "
                  f"{r.seconds:.1f} s", highlight=False)


@sparse_app.command("teacher")
def teacher_cmd(
    out_path: Annotated[Path, Opt("--out", "-o", help="Subnet checkpoint to write (teacher.pt).")],
    space: SpaceO = "mbv2", width: WidthO = None, resolution: ResO = None, data: DataO = "digits",
    epochs: EpochsO = None, batch_size: BatchO = None, lr: LrO = None,
    seed: Annotated[int, Opt(help="Seed.")] = 0, steps_per_epoch: StepsO = None, workers: WorkersO = None,
    torch_device: TorchDevO = None, quiet: Annotated[bool, Opt("--quiet", "-q")] = False,
) -> None:
    """Train the largest subnet alone as the distillation teacher (SparseNAS Sec. 5.5: 180/150 of the recipe's epochs)."""
    from hwnas.sparse.schedule import teacher_epochs
    from hwnas.sparse.teacher import train_teacher

    config = _config(space, width, resolution, data, epochs or teacher_epochs(data), batch_size, lr, seed,
                     steps_per_epoch, workers)
    path, res = train_teacher(config, out_path, device=torch_device)
    if not quiet:
        out.print(f"teacher {path}: search-val top-1 {100 * res.top1:.2f} %", highlight=False)


@sparse_app.command("pairs")
def pairs_cmd(
    checkpoint: Annotated[Path, Opt(help="Proxy supernet checkpoint (runs/proxy/last.pt).")],
    out_path: Annotated[Path, Opt("--out", "-o", help="Pairs file (JSON lines; resumes when it exists).")],
    n: Annotated[int, Opt("--n", "-n", help="Architectures to evaluate (SparseNAS: 1000).")] = 1000,
    seed: Annotated[int, Opt(help="Seed of the sampled architectures.")] = 0,
    calib_batches: Annotated[int, Opt(help="Training batches for BN recalibration.")] = 20,
    batch_size: Annotated[int, Opt(help="Evaluation batch size.")] = 256,
    max_images: Annotated[Optional[int], Opt(help="Evaluate on at most this many search-val images.")] = None,
    torch_device: TorchDevO = None, quiet: Annotated[bool, Opt("--quiet", "-q")] = False,
) -> None:
    """Architecture / accuracy pairs from the proxy supernet (SparseNAS Sec. 5.2.1)."""
    from hwnas.sparse.pairs import collect_pairs

    collect_pairs(checkpoint, out_path, n=n, seed=seed, calib_batches=calib_batches, batch_size=batch_size,
                  max_images=max_images, device=torch_device, quiet=quiet, console=err)


@sparse_app.command("fit")
def fit_cmd(
    pairs: Annotated[Path, Opt(help="Pairs file from `hwnas sparse pairs`.")],
    out_path: Annotated[Path, Opt("--out", "-o", help="Predictor file (JSON).")],
    kind: Annotated[str, Opt(help="gbdt (SparseNAS), rf or mlp.")] = "gbdt",
    test_fraction: Annotated[float, Opt(help="Held-out fraction of the pairs for RMSE / Kendall tau.")] = 0.2,
    seed: Annotated[int, Opt(help="Seed of the split and the model.")] = 0,
    json_out: Annotated[bool, Opt("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Fit the early predictor on pairs; report RMSE and Kendall tau on held-out pairs (SparseNAS Sec. 5.2)."""
    from hwnas.sparse.pairs import read_pairs
    from hwnas.sparse.predictor import KINDS, fit_predictor

    from hwnas.errors import HwnasError

    from hwnas.io import check_writable_file

    if kind not in KINDS:
        raise HwnasError(f"unknown --kind {kind!r}; allowed: {', '.join(KINDS)}")
    check_writable_file(out_path)
    pred = fit_predictor(read_pairs(pairs), kind, test_fraction=test_fraction, seed=seed)
    pred.save(out_path)
    m = pred.metrics
    if json_out:
        typer.echo(json.dumps({"predictor": str(out_path), "kind": kind, **m}))
        return
    out.print(f"{kind} predictor {out_path}: held-out RMSE {m['rmse']:.3f} points (mean-shifted "
              f"{m['rmse_shifted']:.3f}), Kendall tau {m['kendall'] if m['kendall'] is None else round(m['kendall'], 3)}"
              f" on {m['n_test']} pairs (fitted on {m['n_train']})", highlight=False)


@sparse_app.command("space")
def space_cmd(
    predictor: Annotated[Path, Opt(help="Predictor file from `hwnas sparse fit`.")],
    out_path: Annotated[Path, Opt("--out", "-o", help="Sparse-space file (JSON).")],
    buckets: Annotated[int, Opt(help="Equal MACs buckets over the range (SparseNAS: 350, 1M each over 150M..500M).")] = 350,
    per_bucket: Annotated[int, Opt(help="Members kept per bucket (SparseNAS: 5).")] = 5,
    range_: Annotated[Optional[str], Opt("--range", help="MACs range LO,HI (default: the space's smallest to largest).")] = None,
    pop: Annotated[int, Opt(help="Population per bucket (SparseNAS: 50).")] = 50,
    iterations: Annotated[int, Opt(help="Evolution iterations (SparseNAS: 100).")] = 100,
    seed: Annotated[int, Opt(help="Seed.")] = 0,
    json_out: Annotated[bool, Opt("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Evolutionary sampling of the best members per MACs bucket with the early predictor (SparseNAS Sec. 5.3)."""
    from hwnas.sparse.evolve import build_sparse_set
    from hwnas.sparse.predictor import load_predictor
    from hwnas.train.config import parse_range

    from hwnas.io import check_writable_file

    span = None if range_ is None else parse_range(range_, "--range")
    check_writable_file(out_path)
    sparse, rep = build_sparse_set(load_predictor(predictor), buckets=buckets, per_bucket=per_bucket, span=span,
                                   pop=pop, iterations=iterations, seed=seed)
    sparse.save(out_path)
    summary = {"sparse_space": str(out_path), "members": rep.members, "buckets": rep.buckets,
               "filled": rep.filled, "empty": rep.empty, "predictions": rep.predictions, "seconds": rep.seconds}
    if json_out:
        typer.echo(json.dumps(summary))
        return
    out.print(f"sparse space {out_path}: {rep.members} members in {rep.filled}/{rep.buckets} MACs buckets "
              f"({rep.predictions} predictions, {rep.seconds:.1f} s)"
              + (f"; {len(rep.empty)} bucket(s) no architecture reached" if rep.empty else ""), highlight=False)


def pick_cmd(
    checkpoint: Annotated[Path, Opt(help="Supernet trained with --strategy sparse (runs/NAME/last.pt).")],
    max_macs: Annotated[Optional[str], Opt(help="MACs budget (e.g. 300M).")] = None,
    max_latency_ms: Annotated[Optional[float], Opt(help="Latency budget in ms (needs --device).")] = None,
    device: Annotated[Optional[str], Opt("--device", "-d", help="Device profile whose latency table prices the members.")] = None,
    runtime: Annotated[str, Opt(help="Runtime of that latency table.")] = "tflite",
    tables_dir: Annotated[Optional[Path], Opt(help="Folder of latency tables (default: your tables folder, then the shipped ones).")] = None,
    sparse_space: Annotated[Optional[Path], Opt("--sparse-space", help="Sparse-space file (default: the run's).")] = None,
    calib_batches: Annotated[int, Opt(help="Training batches for BN recalibration.")] = 20,
    max_images: Annotated[Optional[int], Opt(help="Evaluate on at most this many search-val images.")] = None,
    torch_device: TorchDevO = None,
    json_out: Annotated[bool, Opt("--json", help="Print JSON.")] = False,
) -> None:
    """Search-free selection: the best member of the sparse set within the budget (SparseNAS Sec. 5.6)."""
    from hwnas.sparse.pick import pick
    from hwnas.units import format_amount, parse_optional_amount

    if max_latency_ms is not None and max_latency_ms <= 0:
        from hwnas.errors import HwnasError

        raise HwnasError(f"--max-latency-ms must be > 0, got {max_latency_ms:g}")
    r = pick(checkpoint, max_macs=parse_optional_amount(max_macs, "--max-macs"), max_latency_ms=max_latency_ms,
             device=device, runtime=runtime, tables_dir=None if tables_dir is None else str(tables_dir),
             sparse_space=sparse_space, calib_batches=calib_batches, max_images=max_images,
             torch_device=torch_device)
    if json_out:
        typer.echo(json.dumps(r.to_dict()))
        return
    t = Table(title=f"pick from {r.sparse_space} ({r.feasible} of {r.members} members within budget)")
    for col in ("genes", "top-1 (search-val)", "MACs", "latency", "select", "evaluated now"):
        t.add_column(col)
    t.add_row(",".join(map(str, r.genes)), f"{100 * r.top1:.2f} %", format_amount(r.macs),
              "-" if r.latency_ms is None else f"{r.latency_ms:.3g} ms", f"{1000 * r.select_seconds:.2f} ms",
              f"{r.evaluated} ({r.eval_seconds:.1f} s)")
    out.print(t)
