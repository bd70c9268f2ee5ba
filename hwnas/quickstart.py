"""``hwnas quickstart``: the whole pipeline on the host CPU with the built-in ``digits`` dataset.

1. **train** a small ``mbv2`` supernet with the GreedyNAS strategy and elastic (Once-for-All)
   weight sharing, which learns in CPU minutes (``runs/.../supernet``);
2. **latency**: the shipped host latency table (``hwnas/latency_tables/host/mbv2-tflite.json``), adapted
   to this computer from a few subnets measured end to end (:mod:`hwnas.latency.adapt`), or, when
   it is missing or lacks keys for these settings, profile one on this computer;
3. **search** NSGA-II over (top-1 error with inherited weights on the held-out search-val split,
   predicted latency) under a latency budget;
4. **export** the most accurate subnet under the budget to ONNX and TFLite, checked against torch;
5. **measure** the exported TFLite model on this computer: predicted vs measured latency, and the
   accuracy of the exported model on the test split.

Every step records its result in ``<out>/quickstart.json`` (atomically) and is skipped when run
again; the long steps (training, profiling, search) resume from their own checkpoints, so a
quickstart interrupted at any point continues where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json, check_writable_dir, read_json

STEPS = ("train", "latency", "search", "export", "measure")
#: predicted vs measured latency further apart than this suggests the shipped table's computer differs
HOST_MISMATCH_PCT = 20.0
#: rounds of the final latency measurement; the quietest is kept (as in latency tables)
MEASURE_ROUNDS = 5


@dataclass(frozen=True)
class QuickstartConfig:
    """Settings of the quick start: a laptop-sized version of the GreedyNAS pipeline.

    The paper's numbers (pop 50 x 20 generations, 120 epochs, 224 px ImageNet) are scaled down so
    the whole run fits in minutes on a 2-core CPU; each is an option of ``hwnas quickstart``.
    """

    space: str = "mbv2"
    width: float = 0.35
    resolution: int = 32
    data: str = "digits"
    strategy: str = "greedy"
    sharing: str = "elastic"  # independent candidate blocks stay near chance in a CPU-minute run
    epochs: int = 10
    batch_size: int = 64
    lr: float | None = 0.05
    steps_per_epoch: int | None = None
    device: str = "host"
    runtime: str = "tflite"
    max_latency_ms: float | None = None  # None: the median predicted latency of random subnets
    pop: int = 16
    gens: int = 6
    eval_batches: int | None = None
    calib_batches: int = 4
    seed: int = 0
    tables_dir: str | None = None  # None: your tables folder, then the shipped hwnas/latency_tables/
    profile_host: bool = False  # profile this computer even when a shipped table covers the settings
    adapt: bool = True  # adapt a table of another computer to this one (a few end-to-end measurements)
    adapt_subnets: int = 6  # subnets measured end to end to adapt it (hwnas.latency.adapt)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _State:
    """``quickstart.json``: settings + each finished step's result, written atomically."""

    def __init__(self, path: Path, cfg: QuickstartConfig) -> None:
        self.path = path
        self.data: dict[str, Any] = {"config": cfg.to_dict(), "steps": {}}
        if path.exists():
            try:
                old = read_json(path, "quick start state")  # UTF-8, an object, no NaN
                for key in ("config", "steps"):
                    if not isinstance(old.get(key), dict):
                        raise HwnasError(f"quick start state {path}: {key!r} must be an object, got "
                                         f"{type(old.get(key)).__name__}")
            except HwnasError as exc:
                raise HwnasError(f"{exc}; remove it to start the quick start again") from None
            if old.get("config") != cfg.to_dict():
                diff = sorted(k for k in cfg.to_dict() if old.get("config", {}).get(k) != cfg.to_dict()[k])
                raise HwnasError(f"{path.parent} holds a quick start with other settings ({', '.join(diff)}); "
                                 f"use another --out or the same options")
            self.data = old

    def done(self, step: str) -> dict[str, Any] | None:
        return self.data["steps"].get(step)

    def finish(self, step: str, result: dict[str, Any]) -> dict[str, Any]:
        self.data["steps"][step] = result
        atomic_write_json(self.path, self.data)
        return result


def _space(cfg: QuickstartConfig, num_classes: int = 10):
    from hwnas.spaces import create_space

    return create_space(cfg.space, width=cfg.width, resolution=cfg.resolution, num_classes=num_classes)


def step_train(cfg: QuickstartConfig, out: Path, console: Console) -> dict[str, Any]:
    from hwnas.train.config import TrainConfig
    from hwnas.train.loop import train_supernet

    run_dir = out / "supernet"
    tc = TrainConfig(space=cfg.space, width=cfg.width, resolution=cfg.resolution, data=cfg.data,
                     strategy=cfg.strategy, sharing=cfg.sharing, epochs=cfg.epochs,
                     batch_size=cfg.batch_size, lr=cfg.lr,
                     workers=0, seed=cfg.seed, steps_per_epoch=cfg.steps_per_epoch)
    resume = (run_dir / "last.pt").exists()
    res = train_supernet(tc, run_dir, resume=resume, torch_device="cpu", console=console)
    return {"checkpoint": str(run_dir / "last.pt"), "epochs": res.epochs_done, "steps": res.steps,
            "stopped_early": res.stopped_early, "stop_reason": res.stop_reason,
            "final_loss": res.final_loss, "seconds": res.seconds}


def step_latency(cfg: QuickstartConfig, out: Path, console: Console) -> dict[str, Any]:
    """Use the shipped table when it covers these settings, else profile this computer."""
    from hwnas.devices.profiles import load_profile
    from hwnas.latency.build import profile_and_calibrate
    from hwnas.latency.predict import LatencyPredictor
    from hwnas.latency.profile import ProfileConfig
    from hwnas.latency.table import load_table

    space = _space(cfg)
    t0 = time.perf_counter()
    if cfg.profile_host:
        reason = "--profile-host"
    else:
        try:
            table = load_table(cfg.device, space, cfg.runtime, cfg.tables_dir)
            if LatencyPredictor(table, space).is_calibrated:
                # your own table of this computer when you have one, else the shipped one, adapted
                # to this computer when it was measured on another
                return {"tables_dir": str(table.path.parents[1]), "table": str(table.path), "profiled": False,
                        "keys": len(table.entries), "adapted": _adapt(cfg, table, space, console),
                        "seconds": time.perf_counter() - t0}
            reason = "it is not calibrated for these settings"
        except HwnasError as exc:
            reason = str(exc)
        reason = f"no usable shipped table: {reason}"
    console.print(f"[yellow]latency:[/] profiling this computer ({reason})")
    tables_dir = out / "latency_tables"
    pcfg = ProfileConfig(runtime=cfg.runtime, warmup=10, runs=30, cool_down=False)
    from hwnas.ui import progress

    with progress(console) as prog:
        tasks: dict[str, int] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = prog.add_task(name, total=total)
            prog.update(tasks[name], completed=done, total=total)

        build = profile_and_calibrate([load_profile(cfg.device)], space, pcfg, tables_dir=tables_dir,
                                      resume=True, calibrate_n=10,
                                      on_progress=lambda dev, key, d, t: report(f"{dev} profile", d, t),
                                      on_calibrate=lambda dev, d, t: report(f"{dev} calibration", d, t)
                                      )[cfg.device]
    return {"tables_dir": str(tables_dir), "table": str(build.table.path), "profiled": True,
            "keys": len(build.table.entries), "adapted": None, "seconds": time.perf_counter() - t0}


def _adapt(cfg: QuickstartConfig, table, space, console: Console) -> dict[str, Any] | None:
    """Adapt ``table`` to this computer (or reuse the cached adaptation); None when it was measured
    here or ``--no-adapt``. What it did, without the measured subnets."""
    if not cfg.adapt:
        return None
    from hwnas.devices.profiles import load_profile
    from hwnas.latency.adapt import adapt_table
    from hwnas.latency.build import device_runner
    from hwnas.ui import progress, say

    profile = load_profile(cfg.device)
    if not profile.is_local:
        return None
    with progress(console) as prog:
        task = prog.add_task("adapting the latency table", total=None)
        a = adapt_table(table, space, device_runner(profile, *table.runtime_precision),
                        threads=profile.cpu.default_threads, root=cfg.tables_dir, n=cfg.adapt_subnets,
                        on_progress=lambda d, t: prog.update(task, completed=d, total=t))
    if a is None:
        return None
    say(console, a.summary(), "latency", "yellow")
    return {k: v for k, v in a.to_dict().items() if k not in ("genes", "measured_ms", "table_stamp")} | {
        "n": len(a.genes)}


def _budget(cfg: QuickstartConfig, tables_dir: str) -> float:
    if cfg.max_latency_ms is not None:
        return cfg.max_latency_ms
    from hwnas.search.objectives import load_latency_predictor

    space = _space(cfg)
    pred = load_latency_predictor(cfg.device, space, cfg.runtime, tables_dir, adapt=cfg.adapt)
    lat = pred(space.sample_many(np.random.default_rng(cfg.seed), 2000))
    return float(np.round(np.median(lat), 4))


def step_search(cfg: QuickstartConfig, out: Path, state: _State, console: Console) -> dict[str, Any]:
    from hwnas.search import build_problem, run_search
    from hwnas.search.run import STATE_FILE

    tables_dir = state.done("latency")["tables_dir"]
    budget = _budget(cfg, tables_dir)
    ckpt = Path(state.done("train")["checkpoint"])
    setup = build_problem(checkpoint=ckpt, device=cfg.device, runtime=cfg.runtime,
                          objectives="error,latency", budgets={"latency": budget}, tables_dir=tables_dir,
                          eval_batches=cfg.eval_batches, calib_batches=cfg.calib_batches,
                          batch_size=256, eval_device="cpu", adapt=cfg.adapt)
    search_dir = out / "search"
    t0 = time.perf_counter()
    res = run_search(setup.problem, "nsga2", pop=cfg.pop, gens=cfg.gens, seed=cfg.seed, out_dir=search_dir,
                     initial=setup.initial, resume=(search_dir / STATE_FILE).exists(),
                     progress=True, extra_settings=setup.settings)
    best = res.best_genes
    m = res.metrics(res.best_index)
    return {"budget_ms": budget, "genes": list(best), "search_val_error": m["error"],
            "predicted_latency_ms": m["latency"], "pareto_size": int(len(res.pareto_index)),
            "evaluations": int(len(res.history)), "dir": str(search_dir),
            "seconds": time.perf_counter() - t0}


def step_export(cfg: QuickstartConfig, out: Path, state: _State, console: Console) -> dict[str, Any]:
    from hwnas.checkpoint import save_checkpoint
    from hwnas.data import load_data, take_batches
    from hwnas.export import export_model
    from hwnas.models import supernet_from_checkpoint
    from hwnas.supernet import materialize, recalibrate_bn
    from hwnas.train.evaluate import evaluate_model

    genes = tuple(state.done("search")["genes"])
    net, _ = supernet_from_checkpoint(state.done("train")["checkpoint"])
    space = net.space
    splits = load_data(cfg.data, resolution=space.resolution, in_channels=space.in_channels)
    sub = materialize(net, genes)
    recalibrate_bn(sub, take_batches(splits.train_clean, 256, max_batches=cfg.calib_batches, seed=0))
    test = take_batches(splits.test, 256)
    acc = evaluate_model(sub, test)
    export_dir = out / "export"
    save_checkpoint(export_dir / "subnet.pt", kind="subnet", space=space, genes=genes,
                    model_state=sub.state_dict())
    meta = {**sub.metadata(), "test_top1": acc.top1, "source_checkpoint": state.done("train")["checkpoint"]}
    results = export_model(sub, export_dir, resolution=space.resolution, in_channels=space.in_channels,
                           metadata=meta)  # also writes the manifest, model.export.json
    tfl = _tflite_accuracy(export_dir / "model.tflite", test)
    return {"dir": str(export_dir), "test_top1_torch": acc.top1, "test_top1_tflite": tfl,
            "files": {r.format: r.path for r in results},
            "max_abs_diff": {r.format: r.max_abs_diff for r in results},
            "seconds": {r.format: r.seconds for r in results}}


def _tflite_accuracy(path: Path, batches) -> float:
    """Top-1 of the exported TFLite model on ``batches`` with the LiteRT interpreter (batch 1)."""
    from hwnas.runtimes import invoke

    correct = total = 0
    for x, y in batches:
        correct += int((invoke(path, x.numpy()).argmax(1) == y.numpy()).sum())
        total += len(y)
    return correct / max(total, 1)


def step_measure(cfg: QuickstartConfig, out: Path, state: _State) -> dict[str, Any]:
    """Measure the exported TFLite model (the quietest of 5 rounds, as tables are built) next to
    the prediction, and the table's canary op: its time now over its best time when the table was
    profiled tells how much faster or slower this computer runs than it did then."""
    from hwnas.devices.profiles import load_profile
    from hwnas.latency.build import device_runner
    from hwnas.latency.keys import space_ops
    from hwnas.latency.opmodels import OpModelCache
    from hwnas.latency.table import LatencyTable
    from hwnas.runners.base import MeasureConfig
    from hwnas.search.objectives import load_latency_predictor

    profile = load_profile(cfg.device)
    runner = device_runner(profile, cfg.runtime)
    mcfg = MeasureConfig(warmup=20, runs=100, threads=profile.cpu.default_threads, cool_down=False)

    def quietest(path: Path) -> float:
        return min(runner.measure(path, mcfg).center_ms for _ in range(MEASURE_ROUNDS))

    space = _space(cfg)
    measured = quietest(Path(state.done("export")["files"]["tflite"]))
    genes = np.asarray([state.done("search")["genes"]])
    tables_dir = state.done("latency")["tables_dir"]
    pred = float(load_latency_predictor(cfg.device, space, cfg.runtime, tables_dir, adapt=cfg.adapt)(genes)[0])
    result = {"measured_ms": measured, "predicted_ms": pred, "error_pct": 100 * (pred - measured) / measured,
              "rounds": MEASURE_ROUNDS, "runs": mcfg.runs, "threads": mcfg.threads, "speed_ratio": None}
    table = LatencyTable.load(state.done("latency")["table"])
    canary = table.metadata.get("last_profile_canary") or {}
    ops = space_ops(space)
    if canary.get("key") in ops and canary.get("canary_best_ms"):
        model = OpModelCache(cfg.runtime).get(canary["key"], ops[canary["key"]])
        ratio = quietest(model) / float(canary["canary_best_ms"])
        result["speed_ratio"] = ratio  # > 1: slower now than when the table was profiled
        result["error_pct_at_profile_speed"] = 100 * (pred * ratio - measured) / measured
    return result


def measure_in_fresh_process(cfg: QuickstartConfig, out: Path, state: _State) -> dict[str, Any]:
    """:func:`step_measure` in a newly spawned interpreter: in the process that has just trained,
    searched and exported, the same model measures markedly slower (see docs/quickstart.md), from
    whatever the converters and thread pools left running."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure_from_state, cfg, out).result()


def _measure_from_state(cfg: QuickstartConfig, out: Path) -> dict[str, Any]:
    return step_measure(cfg, out, _State(out / "quickstart.json", cfg))


def mismatch_hint(measure: dict[str, Any], profiled: bool, adapted: bool = False, native: bool = False) -> str:
    """Why predicted and measured latency differ, from the canary's speed ratio. ``native``: the
    shipped table was measured on this computer (same machine fingerprint, so not adapted)."""
    ratio = measure.get("speed_ratio")
    head = f"the prediction is {measure['error_pct']:+.0f} % off"
    if adapted:
        return (f"{head} although the table was adapted to this computer: the machine was probably "
                f"disturbed while measuring (run again; `hwnas lut validate` checks the table).")
    if ratio is not None and abs(ratio - 1.0) > 0.1:
        return (f"{head}, and the table's reference op runs {ratio:.2f}x its time at profiling: this "
                f"computer is {'slower' if ratio > 1 else 'faster'} now than when the table was measured "
                f"(another job, power saving, a shared virtual machine); at the profiled speed the error "
                f"is {measure['error_pct_at_profile_speed']:+.0f} %.")
    if native:
        return (f"{head}, on the computer that measured the table at its speed then: its calibrated sum "
                f"misses this subnet (`hwnas lut validate` shows the spread; `hwnas lut fit` fits "
                f"predictors that learn from whole-subnet measurements, `search --predictor hybrid`).")
    if not profiled:
        return (f"{head}: the shipped host table was probably measured on another computer. Run again "
                f"without --no-adapt (it adapts the table to this computer in seconds) or with "
                f"--profile-host (and another --out) to measure this one.")
    return f"{head}: the machine was disturbed while measuring; run `hwnas lut validate` to check the table."


def run_quickstart(cfg: QuickstartConfig, out: str | Path, *, until: str | None = None,
                   console: Console | None = None) -> dict[str, Any]:
    """Run (or resume) the quick start into ``out``; returns ``quickstart.json``'s content.

    ``until`` stops after that step (``train``, ``latency``, ``search``, ``export``, ``measure``).
    """
    if until is not None and until not in STEPS:
        raise HwnasError(f"--until {until!r} is not a step; steps: {', '.join(STEPS)}")
    console = console or Console(stderr=True)
    out = check_writable_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    state = _State(out / "quickstart.json", cfg)
    t_all = time.perf_counter()
    runners = {
        "train": lambda: step_train(cfg, out, console),
        "latency": lambda: step_latency(cfg, out, console),
        "search": lambda: step_search(cfg, out, state, console),
        "export": lambda: step_export(cfg, out, state, console),
        "measure": lambda: measure_in_fresh_process(cfg, out, state),
    }
    for step in STEPS:
        if state.done(step) is None:
            console.print(f"[bold cyan]quickstart:[/] {step}")
            t0 = time.perf_counter()
            result = runners[step]()
            result.setdefault("step_seconds", time.perf_counter() - t0)
            state.finish(step, result)
        if step == until:
            break
    state.data["total_seconds_last_invocation"] = time.perf_counter() - t_all
    atomic_write_json(state.path, state.data)
    return state.data


def summary_table(data: dict[str, Any]) -> Table:
    """The summary printed at the end of ``hwnas quickstart``."""
    s = data["steps"]
    cfg = data["config"]
    t = Table(title=f"hwnas quickstart: {cfg['space']} (width {cfg['width']}, {cfg['resolution']} px) "
                    f"on {cfg['data']}, latency on {cfg['device']} ({cfg['runtime']})")
    t.add_column("item")
    t.add_column("value", overflow="fold")
    if "train" in s:
        tr = s["train"]
        t.add_row("supernet", f"{tr['checkpoint']} ({tr['epochs']} epochs, {tr['steps']} steps, "
                              f"{tr['seconds']:.0f} s{', stopped early: ' + tr['stop_reason'] if tr['stopped_early'] else ''})")
    if "latency" in s:
        la = s["latency"]
        t.add_row("latency table", f"{la['table']} ({la['keys']} keys, {'profiled now' if la['profiled'] else 'shipped'})")
        ad = la.get("adapted")
        if ad:
            t.add_row("latency adaptation", f"to this computer from {ad['n']} subnets measured end to end: "
                      f"{ad['speed_ratio']:.2f}x the table's times, scale {ad['scale']:.3f}, per-op "
                      f"{ad['per_op_ms']:+.4f} ms, offset {ad['offset_ms']:+.4f} ms; MAPE on them "
                      f"{ad['mape_before']:.0%} before, {ad['mape_after']:.1%} after"
                      + (" (cached)" if ad["reused"] else ""))
        elif not la["profiled"]:
            t.add_row("latency adaptation", "off (--no-adapt)" if not cfg.get("adapt", True)
                      else "none needed (the table was measured on this computer)")
    if "search" in s:
        se = s["search"]
        t.add_row("search", f"NSGA-II {cfg['pop']} x {cfg['gens']}: {se['evaluations']} subnets evaluated, "
                            f"{se['pareto_size']} on the front, {se['seconds']:.0f} s")
        t.add_row("latency budget", f"{se['budget_ms']:.4f} ms")
        t.add_row("chosen genes", ",".join(map(str, se["genes"])))
        t.add_row("search-val accuracy (supernet weights)", f"{100 - se['search_val_error']:.2f} %")
    if "export" in s:
        ex = s["export"]
        t.add_row("test accuracy (torch / TFLite)", f"{ex['test_top1_torch']:.2%} / {ex['test_top1_tflite']:.2%}")
        for fmt, path in ex["files"].items():
            t.add_row(f"{fmt} file", f"{path} (max |diff| vs torch {ex['max_abs_diff'][fmt]:.1e}, "
                                     f"export {ex['seconds'][fmt]:.1f} s)")
    if "measure" in s:
        me = s["measure"]
        t.add_row("latency predicted / measured", f"{me['predicted_ms']:.4f} / {me['measured_ms']:.4f} ms "
                                                  f"({me['error_pct']:+.1f} %, {me['threads']} thread)")
        if me.get("speed_ratio") is not None:
            t.add_row("speed now / at profiling (reference op)", f"{me['speed_ratio']:.2f}x "
                      f"(error at the profiled speed {me['error_pct_at_profile_speed']:+.1f} %)")
    if "search" in s and "latency" in s:
        from hwnas.cost import arch_costs
        from hwnas.spaces import create_space

        sp = create_space(cfg["space"], width=cfg["width"], resolution=cfg["resolution"], num_classes=10)
        c = arch_costs(sp, s["search"]["genes"])
        t.add_row("MACs / params", f"{c.macs / 1e6:.2f} M / {c.params / 1e6:.3f} M")
    return t


def register(app: typer.Typer) -> None:
    @app.command("quickstart")
    def quickstart_cmd(
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (resumable).")] = Path("runs/quickstart"),
        epochs: Annotated[int, typer.Option(min=1, help="Supernet training epochs.")] = QuickstartConfig.epochs,
        max_latency_ms: Annotated[Optional[float], typer.Option(help="Latency budget (default: median of random subnets).")] = None,
        pop: Annotated[int, typer.Option(min=4)] = QuickstartConfig.pop,
        gens: Annotated[int, typer.Option(min=1)] = QuickstartConfig.gens,
        seed: Annotated[int, typer.Option()] = 0,
        until: Annotated[Optional[str], typer.Option(help="Stop after this step: " + ", ".join(STEPS))] = None,
        steps_per_epoch: Annotated[Optional[int], typer.Option(min=1, help="Cap batches per epoch (smoke runs).")] = None,
        profile_host: Annotated[bool, typer.Option("--profile-host", help="Measure this computer's latency table (about 4 min) instead of the shipped one, which was measured on the development machine.")] = False,
        adapt: Annotated[bool, typer.Option("--adapt/--no-adapt", help="Adapt a latency table measured on another computer (the shipped one) to this computer from a few subnets measured end to end (seconds; cached for this computer).")] = True,
    ) -> None:
        """The whole pipeline on the host CPU with the built-in digits data (minutes; resumable)."""
        cfg = replace(QuickstartConfig(), epochs=epochs, max_latency_ms=max_latency_ms, pop=pop, gens=gens,
                      seed=seed, steps_per_epoch=steps_per_epoch, profile_host=profile_host, adapt=adapt)
        from hwnas.train.loop import TrainingInterrupted

        try:
            data = run_quickstart(cfg, out, until=until)
        except TrainingInterrupted as exc:
            from hwnas.ui import note

            # quickstart has no --resume: the same command continues at the step it was in
            note(f"{exc.signal_name}: stopped after the current step; checkpoint {exc.checkpoint}; "
                 f"run the same command again to resume", label="interrupted")
            raise typer.Exit(code=exc.exit_code) from None
        Console().print(summary_table(data))
        Console().print(f"results: {Path(out) / 'quickstart.json'}")
        me = data["steps"].get("measure")
        if me and abs(me["error_pct"]) > HOST_MISMATCH_PCT:
            la = data["steps"]["latency"]
            native = not la["profiled"] and not la.get("adapted") and data.get("config", {}).get("adapt", True)
            hint = mismatch_hint(me, la["profiled"], bool(la.get("adapted")), native=native)
            Console().print(f"[yellow]note:[/] {hint}", highlight=False)
