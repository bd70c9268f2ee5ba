"""CLI commands of the training stage: ``hwnas train``, ``hwnas strategies``, ``hwnas eval``.

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
    app.command("strategies")(strategies_cmd)
    app.command("eval")(eval_cmd)


def strategies_cmd(
    json_out: Annotated[bool, Opt("--json", help="Print JSON.")] = False,
) -> None:
    """List the training strategies, what each does and its options (pass them with --opt KEY=VALUE)."""
    import dataclasses

    from hwnas.train.strategies import strategy_class, strategy_names

    rows = []
    for name in strategy_names():
        cls = strategy_class(name)
        opts = {f.name: (list(f.default) if isinstance(f.default, tuple) else f.default)
                for f in dataclasses.fields(cls.Options)}
        rows.append({"name": name, "summary": cls.summary, "options": opts,
                     "doc": (cls.Options.__doc__ or "").split("\n\n")[0] if opts else ""})
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    t = Table(title="training strategies (hwnas train --strategy NAME --opt KEY=VALUE)")
    for col in ("strategy", "what it does", "options (default)"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], r["summary"],
                  ", ".join(f"{k}={'auto' if v is None else v}" for k, v in r["options"].items()) or "-")
    out.print(t)


def train_cmd(
    out_dir: Annotated[Path, Opt("--out", "-o", help="Run folder (runs/NAME): config, metrics, last.pt.")],
    space: Annotated[Optional[str], Opt("--space", "-s", help="Search space (default mbv2).")] = None,
    data: Annotated[Optional[str], Opt(help="digits, fake, cifar10, cifar100 or imagefolder:PATH (default digits).")] = None,
    data_root: Annotated[Optional[Path], Opt(help="Folder holding the dataset files (CIFAR).")] = None,
    download: Annotated[Optional[bool], Opt("--download", help="Fetch CIFAR into --data-root (opt-in).")] = None,
    strategy: Annotated[Optional[str], Opt(help="uniform (SPOS), constrained (SPOS uniform-constraint: a random MACs or latency range per step) or greedy (GreedyNAS), sparse (SparseNAS: members of a sparse space); `hwnas strategies` lists them with their options.")] = None,
    sparse_space: Annotated[Optional[Path], Opt("--sparse-space", help="Sparse-space file for --strategy sparse (SparseNAS; written by `hwnas sparse space`): same as --opt space_file=FILE.")] = None,
    opt: Annotated[Optional[list[str]], Opt("--opt", "-O", help="A strategy option KEY=VALUE, repeatable (e.g. --opt m=10 --opt range=2M,4M); the strategy validates it.")] = None,
    sharing: Annotated[Optional[str], Opt(help="Weight sharing: independent (SPOS/GreedyNAS candidate blocks, default) or elastic (OFA: one block per layer sliced by kernel and width; learns in far fewer steps).")] = None,
    epochs: Annotated[Optional[int], Opt(help="Epochs (default: the dataset's recipe; 120 for imagefolder, SPOS).")] = None,
    batch_size: Annotated[Optional[int], Opt(help="Batch size per process (default: the dataset's recipe; 1024 for imagefolder, GreedyNAS).")] = None,
    lr: Annotated[Optional[float], Opt(help="Peak learning rate (default: the recipe's, scaled linearly to the global batch; 0.12 at 1024 for imagefolder).")] = None,
    lr_warmup_epochs: Annotated[Optional[float], Opt(help="Linear learning-rate warm-up from 0 over N epochs, then cosine (default 0).")] = None,
    momentum: Annotated[Optional[float], Opt(help="SGD Nesterov momentum (default 0.9).")] = None,
    weight_decay: Annotated[Optional[float], Opt(help="Weight decay on conv/linear weights (default 4e-5).")] = None,
    label_smoothing: Annotated[Optional[float], Opt(help="Label smoothing (default 0.1).")] = None,
    workers: Annotated[Optional[int], Opt(help="Data-loader worker processes (default 2).")] = None,
    amp: Annotated[Optional[bool], Opt("--amp/--no-amp", help="Mixed precision (CUDA only).")] = None,
    resume: Annotated[bool, Opt("--resume", help="Continue the run in --out from its last.pt.")] = False,
    seed: Annotated[Optional[int], Opt(help="Seed of weights, data order and paths (default 0).")] = None,
    width: Annotated[Optional[float], Opt(help="Width multiplier of the space.")] = None,
    resolution: Annotated[Optional[int], Opt(help="Input resolution.")] = None,
    act: Annotated[Optional[str], Opt("--act", help="The blocks' second activation (PGONAS Sec. 3.1): prelu or mish (relu / relu6: the space's default); on mbv2, mbv2-se, mbv2-se-width and resnet48.")] = None,
    device: Annotated[Optional[str], Opt("--device", "-d", help="Device profile whose latency table gives latency ranges (constrained: --opt cost=latency).")] = None,
    runtime: Annotated[Optional[str], Opt(help="Runtime of that latency table (default tflite).")] = None,
    tables_dir: Annotated[Optional[Path], Opt(help="Folder of latency tables (default: your tables folder, then the shipped ones).")] = None,
    torch_device: Annotated[Optional[str], Opt(help="Torch device: cpu or cuda (default: cuda when available).")] = None,
    steps_per_epoch: Annotated[Optional[int], Opt(help="Cap on batches per epoch (quick runs).")] = None,
    log_every: Annotated[Optional[int], Opt(help="Log a metrics line every N steps (default 20).")] = None,
    stop_after_epochs: Annotated[Optional[int], Opt(help="End this invocation after N epochs (continue with --resume).")] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar or log lines.")] = False,
) -> None:
    """Train a one-shot supernet with a registered strategy (SPOS uniform / uniform-constraint, GreedyNAS greedy)."""
    from hwnas.errors import HwnasError
    from hwnas.train.config import TrainConfig
    from hwnas.train.loop import TrainingInterrupted, read_run_config, train_supernet
    from hwnas.train.strategies import parse_assignments
    from hwnas.io import check_writable_dir

    check_writable_dir(out_dir)  # a read-only or file --out: before the data is loaded
    given = {
        "space": space, "data": data, "data_root": None if data_root is None else str(data_root),
        "download": download, "strategy": strategy, "sharing": sharing, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "lr_warmup_epochs": lr_warmup_epochs, "momentum": momentum,
        "weight_decay": weight_decay, "label_smoothing": label_smoothing, "workers": workers, "amp": amp,
        "seed": seed, "width": width, "resolution": resolution, "act": act, "steps_per_epoch": steps_per_epoch,
        "log_every": log_every, "device": device, "runtime": runtime,
        "tables_dir": None if tables_dir is None else str(tables_dir),
    }
    given = {k: v for k, v in given.items() if v is not None}
    options = parse_assignments(opt or [])
    if sparse_space is not None:
        options["space_file"] = str(sparse_space)
    if stop_after_epochs is not None and stop_after_epochs < 1:
        raise HwnasError(f"--stop-after-epochs must be >= 1, got {stop_after_epochs}")
    if resume:
        if not (out_dir / "last.pt").is_file() and not (out_dir / "config.json").is_file():
            raise HwnasError(f"--resume: {out_dir / 'last.pt'} does not exist (nothing to resume)")
        stored = read_run_config(out_dir)  # a run killed before its first checkpoint: its config.json
        config = stored.replace(**given, options={**stored.options, **options})
    else:
        config = TrainConfig(**given, options=options)
    try:
        result = train_supernet(config, out_dir, resume=resume, torch_device=torch_device, quiet=quiet,
                                stop_after_epochs=stop_after_epochs)
    except TrainingInterrupted as exc:
        from hwnas.ui import note

        note(str(exc), err, "interrupted")
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
    torch_device: Annotated[Optional[str], Opt(help="Torch device: cpu or cuda (default: cuda when available).")] = None,
    json_out: Annotated[bool, Opt("--json", help="Print JSON.")] = False,
) -> None:
    """Evaluate one subnet with inherited supernet weights (after BN recalibration)."""
    from hwnas.arch import parse_genes
    from hwnas.train.evaluate import SubnetEvaluator

    from hwnas.checkpoint import load_checkpoint, space_of

    parse_genes(genes, space_of(load_checkpoint(checkpoint)))  # bad genes fail before data is loaded
    ev = SubnetEvaluator.from_checkpoint(checkpoint, split=split, batch_size=batch_size,
                                         calib_batches=calib_batches, device=torch_device,
                                         data_root=None if data_root is None else str(data_root))
    g = parse_genes(genes, ev.space)
    r = ev(g)
    if json_out:
        typer.echo(json.dumps({"genes": list(g), "split": split, **r.to_dict()}))
        return
    out.print(f"{split}: top-1 {100 * r.top1:.2f} %  top-5 {100 * r.top5:.2f} %  loss {r.loss:.4f}  "
              f"({r.n} images, BN recalibrated on {calib_batches} batches)", highlight=False)
