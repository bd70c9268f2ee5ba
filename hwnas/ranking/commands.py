"""CLI command of the ranking stage: ``hwnas rank-check`` (supernet vs stand-alone ranking).

Thin wrapper: parse, call :func:`hwnas.ranking.rank_check.rank_check` or
:func:`hwnas.ranking.score.score_checkpoint`, print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

out = Console()

Opt = typer.Option


def register(app: typer.Typer) -> None:
    app.command("rank-check")(rank_check_cmd)


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
    torch_device: Annotated[Optional[str], Opt(help="Torch device: cpu or cuda (default: cuda when available).")] = None,
    ground_truth: Annotated[Optional[str], Opt(help="Score against a ground-truth file (or the name of a shipped one, e.g. gratings-mbv2-w0.25-r16): no stand-alone training; --n/--epochs/--seeds/--sample do not apply.")] = None,
    json_out: Annotated[bool, Opt("--json", help="Print the result as JSON (with --ground-truth).")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Rank correlation of supernet (inherited-weight) vs stand-alone accuracy of N random subnets."""
    from hwnas.ranking.rank_check import rank_check

    if ground_truth is not None:
        _rank_check_truth(checkpoint, ground_truth, out_dir, calib_batches, data_root, torch_device, json_out)
        return
    if json_out:
        from hwnas.errors import HwnasError

        raise HwnasError("--json needs --ground-truth (the sampled check writes rank_check.json)")

    r = rank_check(checkpoint, n=n, epochs=epochs, out=out_dir, seed=seed, seeds=seeds, sample=sample,
                   calib_batches=calib_batches,
                   data_root=None if data_root is None else str(data_root), device=torch_device, quiet=quiet)
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
