"""``hwnas lut fit`` and the predictor half of ``hwnas lut validate`` (see docs/predictors.md).

``lut fit`` fits every latency predictor on end-to-end measurements, either taken now on the
device (``--n N`` subnets spread over the predicted latency range, measured with the guard that
profiling uses) or read from a CSV measured anywhere (``--from-csv``; then ``--device`` only names
where the files go and needs no profile). ``lut validate`` scores every stored predictor on held-out
measurements: one table, one plot, ``--json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from hwnas.errors import HwnasError
from hwnas.latency.commands import (
    CanaryOpt,
    ClassesOpt,
    HostOpt,
    PrecisionOpt,
    ResOpt,
    RuntimeOpt,
    SerialOpt,
    SpaceOpt,
    TablesOpt,
    ThreadsOpt,
    WidthOpt,
    _progress,
    _runner,
    _space,
)

out = Console()
err = Console(stderr=True)

DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
FIT_SEED = 7
CsvOpt = Annotated[Optional[Path], typer.Option("--from-csv", help="Measurements taken elsewhere: a CSV with columns genes (gene values joined by '-') and latency_ms; other columns are ignored.")]
PredictorsOpt = Annotated[Optional[str], typer.Option("--predictors", help="Comma-separated predictors (default: every one; see docs/predictors.md).")]


def _device_name(name: str) -> str:
    if not DEVICE_NAME.match(name):
        raise HwnasError(f"--device {name!r} is not a device name (letters, digits, '.', '_', '-'; "
                         f"it names the folder of the device's tables)")
    return name


def _measure(profile, space, ctx, genes, threads, canary, root) -> np.ndarray:
    """End-to-end latency (ms) of ``genes`` on the device: stored measurements of this machine
    are reused, those of another skipped (and said so)."""
    from hwnas.latency.predictors.fitting import e2e_store_path
    from hwnas.latency.validate import EndToEndStore, measure_subnets

    store = EndToEndStore(e2e_store_path(ctx.device, space, ctx.runtime, root, ctx.precision))
    with _progress() as prog:
        task = prog.add_task(f"{ctx.device} end-to-end", total=len(genes))
        return measure_subnets(_runner(profile, ctx.runtime, ctx.precision), space, genes, ctx.runtime, store,
                               threads=threads or profile.cpu.default_threads, precision=ctx.precision,
                               canary=canary, on_progress=lambda d, t: prog.update(task, completed=d, total=t))


def _here(profile, ctx) -> dict:
    """The fingerprint of the machine ``_measure`` measures on (:mod:`hwnas.latency.fingerprint`)."""
    from hwnas.latency.fingerprint import runner_fingerprint

    return runner_fingerprint(_runner(profile, ctx.runtime, ctx.precision))


def _spread_predict(ctx):
    """What spreads the subnets to measure: the table sum, else MACs."""
    if ctx.table is not None:
        return ctx.table_sum().raw
    from hwnas.cost import CostModel

    cm = CostModel(ctx.space)
    return lambda m: cm(m)["macs"].astype(np.float64)


def register(lut: typer.Typer) -> None:
    @lut.command("fit")
    def fit_cmd(device: Annotated[str, typer.Option("--device", "-d", help="Device profile; with --from-csv any device name (the folder its predictors go to).")],
                space: SpaceOpt = "mbv2", runtime: RuntimeOpt = "tflite", precision: PrecisionOpt = None,
                width: WidthOpt = None, resolution: ResOpt = None, num_classes: ClassesOpt = None,
                n: Annotated[Optional[int], typer.Option("--n", help="Measure N subnets end to end on the device, spread over the predicted latency range.")] = None,
                from_csv: CsvOpt = None, predictors: PredictorsOpt = None,
                seed: Annotated[int, typer.Option(help="Seed of the subnets measured with --n.")] = FIT_SEED,
                threads: ThreadsOpt = None, canary: CanaryOpt = True, tables_dir: TablesOpt = None,
                serial: SerialOpt = None, host: HostOpt = None,
                json_out: Annotated[bool, typer.Option("--json", help="Print each predictor's file and fit figures as JSON.")] = False) -> None:
        """Fit every latency predictor on end-to-end measurements (--n on the device, or --from-csv)."""
        from hwnas.latency.predictors.base import parse_predictor_names
        from hwnas.latency.predictors.fitting import (
            Measurements, available, check_enough, context_for, fit_predictors, read_csv, score, spread_genes)

        if (n is None) == (from_csv is None):
            raise HwnasError("give exactly one of --n N (measure N subnets on the device) and --from-csv FILE")
        sp = _space(space, width, resolution, num_classes)
        names = parse_predictor_names(predictors)
        profile = None
        if from_csv is None:
            from hwnas.devices import resolve_device

            profile = resolve_device(device, serial, host)
            device = profile.name
        ctx = context_for(_device_name(device), sp, runtime, tables_dir, precision)
        use, skipped = available(names, ctx)
        if predictors is not None and skipped:
            raise HwnasError(f"{', '.join(skipped)}: {next(iter(skipped.values()))}; profile the device "
                             f"first (`hwnas profile --device {device} --space {sp.name}`) or leave "
                             f"{'it' if len(skipped) == 1 else 'them'} out of --predictors")
        if not use:
            raise HwnasError("no predictor to fit")
        if from_csv is not None:
            m = read_csv(from_csv, sp)
            check_enough(use, len(m))
        else:
            check_enough(use, n)
            genes = spread_genes(sp, n, _spread_predict(ctx), seed)
            m = Measurements(genes, _measure(profile, sp, ctx, genes, threads, canary, tables_dir),
                             f"device:{device}", _here(profile, ctx))
        fitted = fit_predictors(use, m, ctx, tables_dir)
        rows = {}
        for name, p in fitted.items():
            s = score(p(np.asarray(m.genes)), m.latency_ms)
            rows[name] = {"path": str(p.path), "block_additive": p.block_additive, "n": len(m),
                          "fit_mape": s["mape"], "fit_within_10": s["within_10"]}
        if json_out:
            typer.echo(json.dumps({"predictors": rows, "skipped": skipped, "source": m.source}, indent=2))
            return
        t = Table(title=f"latency predictors of {device} {sp.name} {ctx.runtime}: fitted on {len(m)} "
                        f"measured subnets ({m.source})")
        for col in ("predictor", "block-additive", "MAPE on fit", "within +-10 % on fit"):
            t.add_column(col)
        for name, r in rows.items():
            t.add_row(name, "yes" if r["block_additive"] else "no", f"{r['fit_mape']:.1%}",
                      f"{r['fit_within_10']:.0%}")
        out.print(t)
        first = Path(next(iter(rows.values()))["path"])
        out.print(f"files: {first.parent}/{first.name.split('.predictor.')[0]}.predictor.<name>.json; "
                  f"score them on held-out subnets with `hwnas lut validate`")
        for name, why in skipped.items():
            err.print(f"{name} skipped: {why}")


def validate_predictors(device: str, sp, runtime: str, precision: str | None, tables_dir, *,
                        from_csv: Path | None, predictors: str | None, n: int, seed: int, threads: int | None,
                        canary: bool, serial: str | None, host: str | None, json_out: bool) -> bool:
    """Score the stored predictors; ``False`` when none is stored and no CSV is given (then
    ``lut validate`` validates the table as before)."""
    from hwnas.latency.predictors.base import parse_predictor_names
    from hwnas.latency.predictors.fitting import (
        context_for, load_predictors, plot_predictions, read_csv, score, stored_names)

    profile = None
    if from_csv is None:
        from hwnas.devices.profiles import load_profile

        profile = load_profile(device)
        device = profile.name
    ctx = context_for(_device_name(device), sp, runtime, tables_dir, precision)
    names = stored_names(parse_predictor_names(predictors), ctx, tables_dir)
    if not names:
        if from_csv is None and predictors is None:
            return False
        raise HwnasError(f"no latency predictors of device {device!r} for {sp.name} ({ctx.runtime}) are stored; "
                         f"fit them first with `hwnas lut fit --device {device} --space {sp.name} ...`")
    stored = load_predictors(names, ctx, tables_dir)
    fitted = set().union(*(set(p.fitted_genes()) for p in stored.values()))
    if from_csv is not None:
        m = read_csv(from_csv, sp)
        held = m.without(fitted)
        if len(held) < 3:
            raise HwnasError(f"measurements CSV {from_csv} has {len(held)} rows not used for fitting; "
                             f"validation needs at least 3 held-out subnets")
    else:
        from hwnas.devices import resolve_device
        from hwnas.latency.predictors.fitting import Measurements

        profile = resolve_device(profile.name, serial, host)
        rng = np.random.default_rng(seed)
        genes: list[tuple[int, ...]] = []
        for _ in range(100 * n):
            g = tuple(int(v) for v in sp.sample(rng))
            if g not in fitted and g not in genes:
                genes.append(g)
            if len(genes) == n:
                break
        held = Measurements(genes, _measure(profile, sp, ctx, genes, threads, canary, tables_dir),
                            f"device:{device}", _here(profile, ctx))
        from hwnas.latency.fingerprint import describe

        for name, p in stored.items():
            theirs = p.doc["fitted_on"].get("fingerprint")
            measured_here = str(p.doc["fitted_on"].get("source", "")).startswith("device:")
            if (theirs.get("id") != held.fingerprint["id"]) if theirs else measured_here:
                err.print(f"note: {name} was fitted on measurements of {describe(theirs)}, not of this "
                          f"machine; refit it here with `hwnas lut fit --device {device} --n N`",
                          highlight=False, markup=False, soft_wrap=True)
    X = np.asarray(held.genes)
    results = {}
    for name, p in stored.items():
        pred = p(X)
        results[name] = (pred, held.latency_ms, score(pred, held.latency_ms))
    base = stored[names[0]].path
    plot = base.with_name(base.name.split(".predictor.")[0] + ".predictors.validation.png")
    plot_predictions(results, plot, f"{device} {sp.name} {ctx.runtime}: {len(held)} held-out subnets ({held.source})")
    report = {name: {**s, "fitted_on": stored[name].doc["fitted_on"]["n"]} for name, (_, _, s) in results.items()}
    from hwnas.io import atomic_write_json

    atomic_write_json(plot.with_suffix(".json"), {"source": held.source, "plot": str(plot), "scores": report,
                                                  "genes": [list(g) for g in held.genes],
                                                  "measured_ms": held.latency_ms.tolist(),
                                                  "predicted_ms": {k: v[0].tolist() for k, v in results.items()}})
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return True
    t = Table(title=f"latency predictors of {device} {sp.name} {ctx.runtime} on {len(held)} held-out subnets "
                    f"({held.source})")
    for col in ("predictor", "fitted on", "MAPE", "within +-5 %", "within +-10 %", "Kendall tau", "Spearman"):
        t.add_column(col, overflow="fold")
    for name, s in report.items():
        t.add_row(name, str(s["fitted_on"]), f"{s['mape']:.1%}", f"{s['within_5']:.0%}", f"{s['within_10']:.0%}",
                  f"{s['kendall_tau']:.3f}", f"{s['spearman']:.3f}")
    out.print(t)
    out.print(f"plot: {plot}")
    return True


