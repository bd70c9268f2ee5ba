"""``hwnas profile`` and ``hwnas lut show | calibrate | validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from hwnas.errors import HwnasError
from hwnas.ui import say
from hwnas.latency import DEFAULT_CALIBRATION_SUBNETS

out = Console()
err = Console(stderr=True)

DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="Device profile name (see `hwnas devices list`).")]
SpaceOpt = Annotated[str, typer.Option("--space", "-s", help="Search space.")]
RuntimeOpt = Annotated[str, typer.Option(help="Runtime: tflite or onnx (see docs/runtimes.md).")]
PrecisionOpt = Annotated[Optional[str], typer.Option(help="Precision of the measured models: fp32 (default) or int8; the runtime and the device profile must list it.")]
WidthOpt = Annotated[Optional[float], typer.Option(help="Width multiplier of the space.")]
ResOpt = Annotated[Optional[int], typer.Option(help="Input resolution.")]
ClassesOpt = Annotated[Optional[int], typer.Option("--num-classes", help="Number of classes.")]
ThreadsOpt = Annotated[Optional[int], typer.Option(help="Threads (default: the profile's).")]
TablesOpt = Annotated[Optional[Path], typer.Option("--tables-dir", help="Root of latency tables (default: your tables folder, $HWNAS_TABLES_DIR or ~/.local/share/hwnas/latency_tables, where profile writes; read before the tables shipped in the package).")]
SerialOpt = Annotated[Optional[str], typer.Option(help="ADB serial override.")]
HostOpt = Annotated[Optional[str], typer.Option(help="IP[:PORT] override (ADB over TCP).")]
SustainedOpt = Annotated[Optional[float], typer.Option("--sustained", min=0, help="Sustained latency: measure after SECONDS of continuous inference (what a watch or a dev kit shows once warm); its table is a separate file (<space>-<runtime>-sustained<S>s.json).")]
MethodOpt = Annotated[str, typer.Option("--method", help="How to fill the table: trace (op-level traces of a few whole subnets covering every key, from the runtime's op profiler), one-op (one model per key), auto (trace where the runner profiles ops in-process, onnx on the host; else one-op). See docs/latency.md.")]
CanaryOpt = Annotated[bool, typer.Option("--canary/--no-canary", help="Measure in blocks between checks of a reference model; re-measure blocks taken while the device was disturbed.")]


def _progress():
    from hwnas.ui import progress

    return progress(err)


def _space(name, width, resolution, num_classes):
    from hwnas.spaces import create_space

    return create_space(name, width=width, resolution=resolution, num_classes=num_classes)


def _runner(profile, runtime, precision=None):
    from hwnas.latency.build import device_runner

    return device_runner(profile, runtime, precision)


def _load_table(device: str, space, runtime: str, tables_dir, precision: str | None = None,
                write: bool = False, sustained: float | None = None):
    from hwnas.latency.table import load_table, writable

    table = load_table(device, space, runtime, tables_dir, precision, sustained)
    return writable(table, tables_dir) if write else table  # a shipped table is saved to your folder


def register(app: typer.Typer) -> None:
    lut = typer.Typer(no_args_is_help=True, help="Latency tables and predictors: show, calibrate, fit, validate.")
    app.add_typer(lut, name="lut")

    @app.command("profile")
    def profile_cmd(
        device: Annotated[list[str], typer.Option("--device", "-d", help="Device profile; repeat to profile several devices in parallel.")],
        space: SpaceOpt = "mbv2", runtime: RuntimeOpt = "tflite", precision: PrecisionOpt = None,
        width: WidthOpt = None, resolution: ResOpt = None, num_classes: ClassesOpt = None,
        threads: ThreadsOpt = None,
        delegate: Annotated[Optional[str], typer.Option(help="Delegate (default: the profile's first).")] = None,
        warmup: Annotated[int, typer.Option(min=0)] = 10,
        runs: Annotated[int, typer.Option(min=1)] = 50,
        repetitions: Annotated[int, typer.Option(min=1, help="Back-to-back repetitions inside one measurement (pooled).")] = 1,
        rounds: Annotated[int, typer.Option(min=1, help="Measurements per key, round-robin over the keys; the table keeps the quietest (the lowest round median).")] = 3,
        resume: Annotated[bool, typer.Option(help="Continue an existing table.")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="List the keys and the estimated time only.")] = False,
        max_keys: Annotated[Optional[int], typer.Option(min=1, help="Measure at most N missing keys now.")] = None,
        calibrate_n: Annotated[int, typer.Option("--calibrate", min=0, help="Then fit the calibration on N random subnets (+ smallest, largest); 0 to skip.")] = DEFAULT_CALIBRATION_SUBNETS,
        canary: CanaryOpt = True, method: MethodOpt = "auto", sustained: SustainedOpt = None,
        tables_dir: TablesOpt = None, serial: SerialOpt = None, host: HostOpt = None,
    ) -> None:
        """Measure every unique op of a space on a device and write its latency table."""
        from hwnas.devices import resolve_device
        from hwnas.latency.build import profile_and_calibrate
        from hwnas.latency.profile import ProfileConfig, plan_profile

        sp = _space(space, width, resolution, num_classes)
        if (serial or host) and len(device) > 1:
            raise HwnasError("--serial/--host apply to one device; give one --device with them")
        cfg = ProfileConfig(runtime=runtime, precision=precision or "fp32", threads=threads, delegate=delegate, warmup=warmup, runs=runs,
                            repetitions=repetitions, rounds=rounds, max_keys=max_keys, canary=canary,
                            method=method, sustained_s=sustained or 0.0)
        if dry_run:
            from hwnas.devices.profiles import load_profile

            for name in device:
                plan = plan_profile(load_profile(name), sp, cfg, tables_dir)
                how = (f"from op-level traces of {len(plan.subnets)} whole subnets" if plan.method == "trace"
                       else "one model per key")
                t = Table(title=f"{name}: {len(plan.keys)} keys to measure {how} ({plan.measured} already in "
                                f"{plan.table}), estimated {plan.estimate_s / 60:.1f} min")
                t.add_column("#")
                t.add_column("key", overflow="fold")
                for i, k in enumerate(plan.keys):
                    t.add_row(str(i), k)
                out.print(t)
            return
        profiles = [resolve_device(d, serial, host) for d in device]
        with _progress() as prog:
            tasks: dict[str, int] = {}

            def cb(dev, key, done, total):
                if dev not in tasks:
                    tasks[dev] = prog.add_task(dev, total=total)
                prog.update(tasks[dev], completed=done)

            def cb_cal(dev, done, total):
                cb(f"{dev} calibration", None, done, total)

            builds = profile_and_calibrate(profiles, sp, cfg, tables_dir=tables_dir, resume=resume,
                                           calibrate_n=calibrate_n, on_progress=cb, on_calibrate=cb_cal)
        for name, b in builds.items():
            if b.error is not None:
                continue
            say(out, f"{len(b.table.entries)} keys in {b.table.path}"
                + (f"; {len(b.missing)} still missing (run again with --resume)" if b.missing else ""),
                name, "green")
            if b.calibration is not None:
                cal = b.calibration
                say(out, f"  calibration: scale {cal['scale']:.3f}, per-op {cal['per_op_ms']:.4f} ms, "
                    f"offset {cal['offset_ms']:.3f} ms (fit MAPE {cal['mape_on_fit']:.1%})")
        failed = {name: b.error for name, b in builds.items() if b.error is not None}
        if failed:
            raise HwnasError("; ".join(f"{k}: {v}" for k, v in failed.items()))

    @lut.command("show")
    def show_cmd(device: DeviceOpt, space: SpaceOpt = "mbv2", runtime: RuntimeOpt = "tflite",
                 precision: PrecisionOpt = None, tables_dir: TablesOpt = None, sustained: SustainedOpt = None,
                 keys: Annotated[bool, typer.Option("--keys", help="List every key.")] = False,
                 json_out: Annotated[bool, typer.Option("--json", help="Print the table's metadata, calibrations and key count (with --keys, its entries) as JSON.")] = False) -> None:
        """Show a table's metadata, calibrations and (optionally) its keys."""
        import json

        sp = _space(space, None, None, None)
        table = _load_table(device, sp, runtime, tables_dir, precision, sustained=sustained)
        if json_out:
            doc = {"path": str(table.path), "metadata": table.metadata, "calibrations": table.calibrations,
                   "keys": len(table.entries)}
            if keys:
                doc["entries"] = {k: {f: e.get(f) for f in ("median_ms", "std_ms", "count")}
                                  for k, e in sorted(table.entries.items())}
            typer.echo(json.dumps(doc, indent=2, default=str))
            return
        t = Table(title=str(table.path))
        t.add_column("field")
        t.add_column("value", overflow="fold")
        for k, v in table.metadata.items():
            t.add_row(k, str(v))
        t.add_row("keys", str(len(table.entries)))
        for tag, cal in table.calibrations.items():
            t.add_row(f"calibration {tag}", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                      for k, v in cal.items()))
        out.print(t)
        if keys:
            kt = Table()
            for col in ("key", "median ms", "std ms", "runs"):
                kt.add_column(col, overflow="fold")
            for k, e in sorted(table.entries.items()):
                kt.add_row(k, f"{e['median_ms']:.4f}", f"{e['std_ms']:.4f}", str(e["count"]))
            out.print(kt)

    @lut.command("calibrate")
    def calibrate_cmd(device: DeviceOpt, space: SpaceOpt = "mbv2", runtime: RuntimeOpt = "tflite",
                     precision: PrecisionOpt = None,
                      width: WidthOpt = None, resolution: ResOpt = None, num_classes: ClassesOpt = None,
                      n: Annotated[int, typer.Option("--n", min=1)] = 8, threads: ThreadsOpt = None,
                      canary: CanaryOpt = True, sustained: SustainedOpt = None,
                      tables_dir: TablesOpt = None, serial: SerialOpt = None, host: HostOpt = None) -> None:
        """Fit the table's calibration (scale, per-op, offset) on N random subnets measured end to end."""
        from hwnas.devices import resolve_device
        from hwnas.latency.validate import calibrate

        sp = _space(space, width, resolution, num_classes)
        p = resolve_device(device, serial, host)
        table = _load_table(p.name, sp, runtime, tables_dir, precision, write=True, sustained=sustained)
        with _progress() as prog:
            task = prog.add_task(f"{p.name} calibration", total=n + 2)
            cal = calibrate(table, sp, _runner(p, *table.runtime_precision), n=n,
                            threads=threads or p.cpu.default_threads, canary=canary,
                            on_progress=lambda d, t: prog.update(task, completed=d, total=t))
        out.print_json(data=cal)

    @lut.command("validate")
    def validate_cmd(device: Annotated[str, typer.Option("--device", "-d", help="Device profile; with --from-csv any device name with stored predictors.")],
                     space: SpaceOpt = "mbv2", runtime: RuntimeOpt = "tflite",
                     precision: PrecisionOpt = None,
                     width: WidthOpt = None, resolution: ResOpt = None, num_classes: ClassesOpt = None,
                     n: Annotated[int, typer.Option("--n", min=3)] = 100, threads: ThreadsOpt = None,
                     seed: Annotated[int, typer.Option(help="Seed of the held-out subnets.")] = 12345,
                     canary: CanaryOpt = True, sustained: SustainedOpt = None,
                     from_csv: Annotated[Optional[Path], typer.Option("--from-csv", help="Held-out measurements taken elsewhere (columns genes, latency_ms); rows the predictors were fitted on are left out.")] = None,
                     predictors: Annotated[Optional[str], typer.Option("--predictors", help="Comma-separated stored predictors to score (default: every stored one).")] = None,
                     json_out: Annotated[bool, typer.Option("--json", help="Print, per predictor, n, mape, within_5, within_10, kendall_tau, spearman as JSON.")] = False,
                     tables_dir: TablesOpt = None, serial: SerialOpt = None, host: HostOpt = None) -> None:
        """Score every stored latency predictor (`hwnas lut fit`) on held-out subnets: N measured now
        or --from-csv; one table, one plot. Without stored predictors: the table's calibrated sum."""
        from hwnas.devices import resolve_device
        from hwnas.latency.predictor_commands import validate_predictors
        from hwnas.latency.validate import validate

        sp = _space(space, width, resolution, num_classes)
        if sustained and (from_csv is not None or predictors is not None):
            raise HwnasError("--sustained scores the sustained table's calibrated sum, measured now; stored "
                             "predictors and --from-csv measurements are burst latency: drop --from-csv / "
                             "--predictors, or --sustained")
        if not sustained and validate_predictors(device, sp, runtime, precision, tables_dir, from_csv=from_csv, predictors=predictors,
                               n=n, seed=seed, threads=threads, canary=canary, serial=serial, host=host,
                               json_out=json_out):
            return
        p = resolve_device(device, serial, host)
        table = _load_table(p.name, sp, runtime, tables_dir, precision, write=True, sustained=sustained)
        with _progress() as prog:
            task = prog.add_task(f"{p.name} end-to-end", total=n)
            rep = validate(table, sp, _runner(p, *table.runtime_precision), n=n, seed=seed,
                           threads=threads or p.cpu.default_threads, canary=canary,
                           on_progress=lambda d, t: prog.update(task, completed=d, total=t))
        if json_out:
            import json

            typer.echo(json.dumps({"table": {"n": rep.n, "mape": rep.mape, "within_10": rep.within_10pct,
                                             "kendall_tau": rep.kendall_tau, "spearman": rep.spearman}}, indent=2))
            return
        t = Table(title=f"latency table validation: {rep.device} {rep.space} {rep.runtime}")
        for col in ("subnets", "MAPE", "within +-10 %", "Kendall tau", "Spearman", "calibrated", "plot"):
            t.add_column(col, overflow="fold")
        t.add_row(str(rep.n), f"{rep.mape:.1%}", f"{rep.within_10pct:.0%}", f"{rep.kendall_tau:.3f}",
                  f"{rep.spearman:.3f}", "yes" if rep.calibrated else "no", rep.plot)
        out.print(t)

    from hwnas.latency.predictor_commands import register as register_predictors

    register_predictors(lut)
