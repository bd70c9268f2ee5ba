"""``hwnas search``: NSGA-II / SPOS evolution / random search under latency, MACs, params, BitOps budgets.

Thin: parse the options, build the problem from library calls (:func:`build_cli_problem`), call
:func:`~hwnas.search.run.run_search`, print the Pareto set.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hwnas.errors import HwnasError

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_amount(text: str | None, option: str) -> float | None:
    """``330M``, ``1.5G``, ``2e8``, ``12.5`` -> float (K / M / G / T suffixes, case-insensitive)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)\s*", str(text))
    if not m:
        raise HwnasError(f"{option} {text!r} is not a number; use e.g. 330M, 1.5G or 2e8")
    value = float(m.group(1)) * _SUFFIX[m.group(2).lower()]
    if value <= 0:
        raise HwnasError(f"{option} must be > 0, got {text}")
    return value


def build_error_objective(supernet: Any, ckpt: dict[str, Any], checkpoint: Path, *, data: str | None,
                          data_root: str | None, eval_batches: int | None, calib_batches: int,
                          batch_size: int, device: str | None):
    """The accuracy objective of ``hwnas search``: top-1 error on the ``search-val`` split (held out
    of supernet training) after BN recalibration on a fixed random subset of the clean training
    images (SPOS Sec. 3.4). The dataset is the training run's own (``train_config`` in the
    checkpoint) unless ``data`` overrides it; ``digits`` for checkpoints without a training config.
    The calibration subset is seeded with 0, so an architecture's error does not depend on the
    search seed."""
    from hwnas.search.objectives import error_objective

    try:
        from hwnas.data import load_data, take_batches
        from hwnas.train.distributed import resolve_device
        from hwnas.train.evaluate import SubnetEvaluator
    except ImportError as exc:
        raise HwnasError(f"the error objective needs the training and data modules: {exc}") from None
    space = supernet.space
    if "train_config" in ckpt:
        from hwnas.train.loop import data_for, train_config_of

        cfg = train_config_of(ckpt, checkpoint)
        if data is not None:
            cfg = cfg.replace(data=data)
        if data_root is not None:
            cfg = cfg.replace(data_root=str(data_root))
        splits = data_for(cfg, space.resolution, space.in_channels)
    else:
        splits = load_data(data or "digits", resolution=space.resolution, in_channels=space.in_channels,
                           root=data_root)
    if splits.num_classes != space.num_classes:
        raise HwnasError(f"dataset {splits.name!r} has {splits.num_classes} classes, the supernet "
                         f"{space.num_classes}: pass the dataset it was trained on (--data)")
    dev = resolve_device(device)
    eval_b = take_batches(splits.search_val, batch_size, max_batches=eval_batches)
    calib_b = take_batches(splits.train_clean, batch_size, max_batches=calib_batches, seed=0) \
        if calib_batches else None
    return error_objective(SubnetEvaluator(supernet.to(dev), eval_b, calib_b, dev))


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search_cmd(
        out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder (results + resumable state).")],
        checkpoint: Annotated[Optional[Path], typer.Option(help="Supernet checkpoint (.pt): space, weights, candidate pool.")] = None,
        space: Annotated[Optional[str], typer.Option("--space", "-s", help="Search space without a checkpoint (cost / latency objectives only).")] = None,
        width: Annotated[Optional[float], typer.Option(help="Width multiplier for --space.")] = None,
        resolution: Annotated[Optional[int], typer.Option(help="Input resolution for --space.")] = None,
        num_classes: Annotated[Optional[int], typer.Option("--num-classes", help="Classes for --space.")] = None,
        device: Annotated[Optional[str], typer.Option(help="Device whose latency table predicts latency (latency_tables/<device>/).")] = None,
        runtime: Annotated[str, typer.Option(help="Runtime of the latency table.")] = "tflite",
        tables_dir: Annotated[Optional[Path], typer.Option("--tables-dir", help="Root of latency tables (default: the repo's latency_tables/).")] = None,
        max_latency_ms: Annotated[Optional[float], typer.Option("--max-latency-ms", help="Latency budget in ms (needs --device).")] = None,
        max_macs: Annotated[Optional[str], typer.Option("--max-macs", help="MACs budget, e.g. 330M.")] = None,
        max_params: Annotated[Optional[str], typer.Option("--max-params", help="Parameter budget, e.g. 5M.")] = None,
        max_bitops: Annotated[Optional[str], typer.Option("--max-bitops", help="BitOps budget, e.g. 20G.")] = None,
        objectives: Annotated[Optional[str], typer.Option(help="Comma-separated: error, latency, macs, params, bitops, flops, peak_act_bytes. Default: error,latency with --device, else error,macs (macs,params without --checkpoint).")] = None,
        algorithm: Annotated[str, typer.Option(help="nsga2 (default), evolution (SPOS, first objective) or random.")] = "nsga2",
        pop: Annotated[int, typer.Option(min=2, help="Population size (GreedyNAS / SPOS: 50).")] = 50,
        gens: Annotated[int, typer.Option(min=1, help="Generations (GreedyNAS / SPOS: 20).")] = 20,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
        resume: Annotated[bool, typer.Option("--resume", help="Continue the search stored in --out.")] = False,
        use_pool: Annotated[bool, typer.Option("--pool/--no-pool", help="Start from the checkpoint's GreedyNAS candidate pool when it has one.")] = True,
        data: Annotated[Optional[str], typer.Option(help="Dataset for the error objective (default: the checkpoint's, else digits).")] = None,
        data_root: Annotated[Optional[str], typer.Option(help="Dataset root folder.")] = None,
        eval_batches: Annotated[Optional[int], typer.Option(min=1, help="search-val batches per subnet (default: the whole split).")] = None,
        calib_batches: Annotated[int, typer.Option(min=0, help="Training batches for BN recalibration per subnet (SPOS; 0: none).")] = 20,
        batch_size: Annotated[int, typer.Option(min=1, help="Batch size of the error objective.")] = 256,
        eval_device: Annotated[Optional[str], typer.Option(help="Torch device evaluating subnets (default: cuda if available, else cpu).")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print the Pareto set as JSON.")] = False,
    ) -> None:
        """Search architectures under budgets; writes pareto.csv/json/png and history.csv to --out."""
        import json

        from rich.console import Console
        from rich.table import Table

        from hwnas.search.objectives import format_value
        from hwnas.search.output import genes_text
        from hwnas.search.run import run_search

        problem, initial = build_cli_problem(
            checkpoint=checkpoint, space=space, width=width, resolution=resolution,
            num_classes=num_classes, device=device, runtime=runtime, tables_dir=tables_dir,
            objectives=objectives,
            budgets={"latency": max_latency_ms, "macs": parse_amount(max_macs, "--max-macs"),
                     "params": parse_amount(max_params, "--max-params"),
                     "bitops": parse_amount(max_bitops, "--max-bitops")},
            use_pool=use_pool, data=data, data_root=data_root, eval_batches=eval_batches,
            calib_batches=calib_batches, batch_size=batch_size, eval_device=eval_device)
        extra = {"checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()),
                 "device": device,
                 "runtime": runtime if device else None}
        if "error" in [o.name for o in problem.objectives + problem.constraints]:
            extra["evaluation"] = {"data": data, "data_root": data_root, "eval_batches": eval_batches,
                                   "calib_batches": calib_batches, "batch_size": batch_size}
        result = run_search(problem, algorithm, pop=pop, gens=gens, seed=seed, out_dir=out_dir,
                            initial=initial, resume=resume, progress=not json_out, extra_settings=extra)
        if json_out:
            typer.echo(json.dumps(json.loads(result.files["pareto.json"].read_text()), indent=2))
            return
        out = Console()
        cols = [o.name for o in problem.objectives] + [c for c in ("latency", "macs", "params", "bitops")
                                                        if c in problem.metric_names
                                                        and c not in [o.name for o in problem.objectives]]
        t = Table(title=f"Pareto set: {len(result.pareto_index)} of {len(result.history)} evaluated "
                        f"({algorithm}, {problem.space.name})")
        for c in ["#", "genes", *cols]:
            t.add_column(c, overflow="fold")
        for rank, i in enumerate(result.pareto_index):
            m = result.metrics(i)
            t.add_row(str(rank), genes_text(result.history.genes[i]),
                      *[format_value(m[c], problem.unit_of(c)) for c in cols])
        out.print(t)
        out.print(f"results in {out_dir}: " + ", ".join(p.name for p in result.files.values()))


def build_cli_problem(*, checkpoint: Path | None, space: str | None, width: float | None,
                      resolution: int | None, num_classes: int | None, device: str | None,
                      runtime: str, objectives: str | None, budgets: dict[str, float | None],
                      tables_dir: Path | None = None,
                      use_pool: bool = True, data: str | None = None, data_root: str | None = None,
                      eval_batches: int | None = None, calib_batches: int = 20, batch_size: int = 256,
                      eval_device: str | None = None):
    """The problem and initial population of ``hwnas search`` (a library call, usable from Python)."""
    from hwnas.cost import CostModel
    from hwnas.search.algorithms import initial_from_checkpoint
    from hwnas.search.objectives import load_latency_predictor
    from hwnas.search.problem import problem_from_names
    from hwnas.spaces import create_space

    if checkpoint is None and space is None:
        raise HwnasError("pass --checkpoint (a supernet) or --space (cost / latency objectives only)")
    if budgets.get("latency") is not None and device is None:
        raise HwnasError("--max-latency-ms needs --device: the latency table of which device?")
    if objectives is None:
        second = "latency" if device else "macs"
        names = ["error", second] if checkpoint is not None else [second, "params" if device is None else "macs"]
    else:
        names = [n.strip() for n in objectives.split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise HwnasError(f"--objectives {objectives!r} names a metric twice")
    if "latency" in names and device is None:
        raise HwnasError("the latency objective needs --device (the latency table of which device?)")

    supernet = ckpt = None
    if checkpoint is not None:
        from hwnas.models import supernet_from_checkpoint

        supernet, ckpt = supernet_from_checkpoint(checkpoint, space_name=space)
        sp = supernet.space
    else:
        sp = create_space(space, width=width, resolution=resolution, num_classes=num_classes)
    cm = CostModel(sp)
    latency = None
    if device is not None and ("latency" in names or budgets.get("latency") is not None):
        latency = load_latency_predictor(device, sp, runtime, tables_dir)
    error = None
    if "error" in names:
        if supernet is None:
            raise HwnasError("the error objective needs --checkpoint (a trained supernet)")
        error = build_error_objective(supernet, ckpt, checkpoint, data=data, data_root=data_root,
                                      eval_batches=eval_batches, calib_batches=calib_batches,
                                      batch_size=batch_size, device=eval_device)
    problem = problem_from_names(sp, names, budgets, latency=latency, error=error, cost_model=cm)
    initial = initial_from_checkpoint(ckpt, sp) if (use_pool and ckpt is not None) else None
    return problem, initial
