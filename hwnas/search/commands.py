"""``hwnas search``: NSGA-II / SPOS evolution / random search under latency, MACs, params, BitOps budgets.

Thin: parse the options, build the search (:func:`hwnas.search.build.build_problem`), run it
(:func:`hwnas.search.run.run_search`), print the Pareto set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search_cmd(
        out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder (results + resumable state).")],
        checkpoint: Annotated[Optional[Path], typer.Option(help="Supernet checkpoint (.pt): space, weights, candidate pool.")] = None,
        space: Annotated[Optional[str], typer.Option("--space", "-s", help="Search space without a checkpoint (cost / latency objectives only).")] = None,
        width: Annotated[Optional[float], typer.Option(help="Width multiplier for --space.")] = None,
        resolution: Annotated[Optional[int], typer.Option(help="Input resolution for --space.")] = None,
        num_classes: Annotated[Optional[int], typer.Option("--num-classes", help="Classes for --space.")] = None,
        device: Annotated[Optional[str], typer.Option(help="Device whose latency table predicts latency (<tables-dir>/<device>/).")] = None,
        runtime: Annotated[str, typer.Option(help="Runtime of the latency table.")] = "tflite",
        precision: Annotated[Optional[str], typer.Option(help="Precision of the latency table: fp32 (default) or int8.")] = None,
        tables_dir: Annotated[Optional[Path], typer.Option("--tables-dir", help="Root of latency tables (default: your tables folder, then the shipped ones).")] = None,
        predictor: Annotated[Optional[str], typer.Option(help="Stored latency predictor of --device to predict latency with (`hwnas lut fit`; see docs/predictors.md): table-sum, physical, gbdt-genes, gbdt-features, mlp-genes, mlp-features, hybrid. Default: the table's calibrated sum.")] = None,
        max_latency_ms: Annotated[Optional[float], typer.Option("--max-latency-ms", help="Latency budget in ms (needs --device).")] = None,
        max_macs: Annotated[Optional[str], typer.Option("--max-macs", help="MACs budget, e.g. 330M.")] = None,
        max_params: Annotated[Optional[str], typer.Option("--max-params", help="Parameter budget, e.g. 5M.")] = None,
        max_bitops: Annotated[Optional[str], typer.Option("--max-bitops", help="BitOps budget of the searched (quantized) blocks, e.g. 6.5e9 or 20G, as SPOS counts it: the full-precision stem and classifier are excluded (metric searched_bitops); total BitOps are reported as bitops.")] = None,
        objectives: Annotated[Optional[str], typer.Option(help="Comma-separated: error, latency, macs, params, bitops (total), searched_bitops, flops, peak_act_bytes. Default: error,latency with --device, else error,macs (macs,params without --checkpoint).")] = None,
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
        adapt: Annotated[bool, typer.Option("--adapt/--no-adapt", help="With --device host: adapt a latency table measured on another computer (the shipped ones) to this one from a few subnets measured end to end, cached for this computer (see docs/latency.md).")] = True,
    ) -> None:
        """Search architectures under budgets; writes pareto.csv/json/png and history.csv to --out."""
        import json

        from rich.console import Console
        from rich.table import Table

        from hwnas.search.build import build_problem
        from hwnas.search.output import genes_text
        from hwnas.search.run import run_search
        from hwnas.units import format_amount, parse_optional_amount

        setup = build_problem(
            checkpoint=checkpoint, space=space, width=width, resolution=resolution,
            num_classes=num_classes, device=device, runtime=runtime, precision=precision, tables_dir=tables_dir,
            predictor=predictor, objectives=objectives,
            budgets={"latency": max_latency_ms, "macs": parse_optional_amount(max_macs, "--max-macs"),
                     "params": parse_optional_amount(max_params, "--max-params"),
                     "searched_bitops": parse_optional_amount(max_bitops, "--max-bitops")},
            use_pool=use_pool, data=data, data_root=data_root, eval_batches=eval_batches,
            calib_batches=calib_batches, batch_size=batch_size, eval_device=eval_device,
            adapt=adapt, on_adapt=_say_adapted)
        problem = setup.problem
        result = run_search(problem, algorithm, pop=pop, gens=gens, seed=seed, out_dir=out_dir,
                            initial=setup.initial, resume=resume, progress=not json_out,
                            extra_settings=setup.settings)
        if json_out:
            typer.echo(json.dumps(json.loads(result.files["pareto.json"].read_text()), indent=2))
            return
        out = Console()
        shown = ("latency", "macs", "params", "bitops", *(["searched_bitops"] if _quantized(problem.space) else []))
        cols = [o.name for o in problem.objectives] + [c for c in shown if c in problem.metric_names
                                                        and c not in [o.name for o in problem.objectives]]
        t = Table(title=f"Pareto set: {len(result.pareto_index)} of {len(result.history)} evaluated "
                        f"({algorithm}, {problem.space.name})")
        for c in ["#", "genes", *cols]:
            t.add_column(c, overflow="fold")
        for rank, i in enumerate(result.pareto_index):
            m = result.metrics(i)
            t.add_row(str(rank), genes_text(result.history.genes[i]),
                      *[format_amount(m[c], problem.unit_of(c)) for c in cols])
        out.print(t)
        out.print(f"results in {out_dir}: " + ", ".join(p.name for p in result.files.values()))


def _say_adapted(adaptation) -> None:
    from hwnas.ui import note

    note(adaptation.summary(), label="latency")


def _quantized(space) -> bool:
    """Whether any searched block runs below full precision (then searched BitOps are worth a column)."""
    return any(op.w_bits < 32 or op.a_bits < 32 for op in space.layers(space.smallest()) if op.block >= 0)
