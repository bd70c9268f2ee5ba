"""``hwnas profile``: measure every unique op key of a space on a device and write its latency table.

The one-op models are exported first; then every key is measured ``rounds`` times, round-robin
over the keys, and its entry keeps the median of its *quietest* round (the lowest round median).
A disturbance (another job on the host, the hypervisor, a DVFS ramp or a background task on a
phone) only ever slows a round down, and round-robin spreads it over a few keys' rounds instead
of all repetitions of one key (what that gains on a real machine: docs/latency.md, "Measurement
hygiene").

Each measured round is written to the table atomically, so a profile that is killed or loses its
device halfway resumes where it stopped (``resume=True``). Several devices can be profiled in
parallel (:func:`profile_devices`): one thread per device, sharing the exported one-op models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hwnas.cost import op_costs
from hwnas.devices.profiles import DeviceProfile
from hwnas.checks import check_float, check_int
from hwnas.errors import HwnasError
from hwnas.latency.keys import space_ops
from hwnas.latency.opmodels import OpModelCache
from hwnas.latency.table import LatencyTable, table_path
from hwnas.runners.quiet import measure_guarded, runner_canary
from hwnas.runtimes import DEFAULT_PRECISION, LEGACY_NAMES, resolve
from hwnas.spaces.base import SearchSpace


@dataclass(frozen=True)
class ProfileConfig:
    """How to profile. Defaults follow common practice for per-op tables (nn-Meter: warm-up, then
    tens of timed runs, median reported)."""

    runtime: str = "tflite"
    precision: str = "fp32"
    threads: int | None = None
    delegate: str | None = None
    warmup: int = 10
    runs: int = 50
    repetitions: int = 1  # back-to-back repetitions inside one measurement (pooled)
    rounds: int = 3  # measurements per key, round-robin over the keys; the entry keeps the quietest
    max_keys: int | None = None  # profile at most this many unfinished keys now (run again to continue)
    cool_down: bool = True
    canary: bool = True  # measure in blocks between checks of a reference model (hwnas.runners.quiet)
    canary_block: int = 8
    canary_max_wait_s: float = 60.0
    #: "one-op" (one model per key), "trace" (op-level traces of a few whole subnets,
    #: :mod:`hwnas.latency.trace`) or "auto" (:func:`hwnas.latency.trace.resolve_method`)
    method: str = "auto"
    #: seconds of continuous inference before every timed measurement (sustained latency; 0: burst)
    sustained_s: float = 0.0

    def __post_init__(self) -> None:
        # a legacy runtime name (tflite-int8) becomes its (runtime, precision) pair
        legacy = self.runtime in LEGACY_NAMES and self.precision == DEFAULT_PRECISION
        spec, precision = resolve(self.runtime, None if legacy else self.precision)
        object.__setattr__(self, "runtime", spec.name)
        object.__setattr__(self, "precision", precision)
        # before any table is opened or written: a table stamped with a bad setting would block
        # every correct run after it
        for name, value, low in (("--threads", self.threads, 1), ("--warmup", self.warmup, 0),
                                 ("--runs", self.runs, 1), ("--repetitions", self.repetitions, 1),
                                 ("--rounds", self.rounds, 1), ("--max-keys", self.max_keys, 1),
                                 ("canary block", self.canary_block, 1)):
            check_int(name, value, min=low)
        check_float("canary max wait", self.canary_max_wait_s, min=0, optional=False)
        check_float("--sustained", self.sustained_s, min=0, optional=False)
        from hwnas.latency.trace import METHODS

        if self.method not in METHODS:
            raise HwnasError(f"--method {self.method!r} is not a profile method; allowed: {', '.join(METHODS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: rough host-independent throughput used only by --dry-run estimates before anything is measured
_EST_MACS_PER_S = 2e9


def _runner_for(profile: DeviceProfile, runtime: str, transport: Any, precision: str | None = None):
    from hwnas.runners.registry import open_runner

    return open_runner(profile, runtime, precision, transport)


def _open_table(path: Path, profile: DeviceProfile, space: SearchSpace, cfg: ProfileConfig,
                runtime_version: str, delegate: str, threads: int, resume: bool) -> LatencyTable:
    if path.exists():
        table = LatencyTable.load(path)
        table.check_compatible(space=space, runtime=cfg.runtime, precision=cfg.precision)
        meta = table.metadata
        want = {"device": profile.name, "threads": threads, "delegate": delegate}
        if meta.get("method", "one-op") != cfg.method:
            raise HwnasError(f"{path} was measured with --method {meta.get('method', 'one-op')}, this "
                             f"profile uses --method {cfg.method}; write to another --tables-dir or "
                             f"remove the file")
        for k, v in want.items():
            if meta.get(k) != v:
                raise HwnasError(f"{path} was measured with {k}={meta.get(k)!r}, this profile uses "
                                 f"{k}={v!r}; write to another --tables-dir or remove the file")
        if not resume and table.entries:
            raise HwnasError(f"{path} already holds {len(table.entries)} measured keys: pass --resume "
                             f"to continue it, or remove it to start again")
        table.note_space(space)
        return table
    table = LatencyTable.new(
        device=profile.name, soc=profile.soc, runtime=cfg.runtime, precision=cfg.precision,
        runtime_version=runtime_version,
        delegate=delegate, threads=threads, warmup=cfg.warmup, runs=cfg.runs, space=space, path=path,
        device_name=profile.human_name, repetitions=cfg.repetitions, rounds=cfg.rounds,
        method=cfg.method, **({"sustained_s": cfg.sustained_s} if cfg.sustained_s else {}))
    table.save()
    return table


@dataclass
class ProfilePlan:
    """What a profile would do: the keys still missing and a time estimate."""

    device: str
    table: Path
    keys: list[str]
    measured: int
    estimate_s: float
    method: str = "one-op"
    #: the whole subnets a trace profile would export and measure (empty for one-op)
    subnets: list[tuple[int, ...]] = field(default_factory=list)


def plan_profile(profile: DeviceProfile, space: SearchSpace, cfg: ProfileConfig,
                 tables_dir: str | Path | None = None, cache: OpModelCache | None = None) -> ProfilePlan:
    """The keys a profile would measure and an estimate of its duration (``--dry-run``)."""
    spec = resolve(cfg.runtime, cfg.precision)[0]
    profile.runtime(spec.name).check_precision(cfg.precision)  # the device must run it
    ops = space_ops(space)
    path = table_path(profile.name, space.name, cfg.runtime, tables_dir, cfg.precision, cfg.sustained_s)
    table = LatencyTable.load(path) if path.exists() else None
    measured = table.entries if table is not None else {}
    todo = table.unfinished(ops, cfg.rounds) if table is not None else list(ops)
    if cfg.max_keys is not None:
        todo = todo[: cfg.max_keys]
    threads = cfg.threads or profile.cpu.default_threads
    from hwnas.latency.trace import cover_subnets, resolve_method
    from hwnas.runners.registry import default_runner_name, runner_class

    method = resolve_method(cfg.method, runner_class(default_runner_name(profile, spec.name, cfg.precision)),
                            table, cfg.max_keys)
    if method == "trace":
        subnets = cover_subnets(space) if todo else []
        est = 0.0
        for g in subnets:
            layer_ops = space.layers(g)
            per_run = sum(op_costs(o).macs for o in layer_ops) / (_EST_MACS_PER_S * threads) + 1e-4
            est += 2 * (cfg.warmup + cfg.runs) * cfg.repetitions * cfg.rounds * per_run
            est += spec.export_estimate_s.get(cfg.precision, 2.0) * len(layer_ops)
            est += 2 * cfg.sustained_s * cfg.repetitions * cfg.rounds
        return ProfilePlan(profile.name, path, todo, len(measured), est, method, subnets)
    cache = cache or OpModelCache(cfg.runtime, precision=cfg.precision)
    est = 0.0
    for k in todo:
        left = cfg.rounds - (table.rounds_done(k) if table is not None else 0)
        per_run = op_costs(ops[k]).macs / (_EST_MACS_PER_S * threads) + 1e-4
        est += (cfg.warmup + cfg.runs) * cfg.repetitions * left * per_run
        est += 0.0 if cache.cached(k) else spec.export_estimate_s.get(cfg.precision, 2.0)
        est += profile.thermal.fixed_pause_s * cfg.repetitions * left if cfg.cool_down else 0.0
        est += cfg.sustained_s * cfg.repetitions * left
    return ProfilePlan(profile.name, path, todo, len(measured), est)


def profile_device(profile: DeviceProfile, space: SearchSpace, cfg: ProfileConfig, *,
                   tables_dir: str | Path | None = None, resume: bool = False, transport: Any = None,
                   cache: OpModelCache | None = None,
                   on_progress: Callable[[str, int, int], None] | None = None) -> LatencyTable:
    """Measure the missing op keys of ``space`` on ``profile`` and return the (saved) table.

    ``on_progress(key, done, total)`` is called after every key. Any failure (device lost after the
    transport's retries, unparsable tool output) propagates as HwnasError; everything measured before
    it is already on disk, and the error says to continue with ``resume=True`` (``--resume``).
    """
    runner = _runner_for(profile, cfg.runtime, transport, cfg.precision)
    rt = profile.runtime(cfg.runtime)
    delegate = rt.check_delegate(cfg.delegate)
    threads = cfg.threads or profile.cpu.default_threads
    runner.preflight()  # a wrong serial or a missing tool fails before any export or table
    runtime_version = _runtime_version(runner)
    path = table_path(profile.name, space.name, cfg.runtime, tables_dir, cfg.precision, cfg.sustained_s)
    from dataclasses import replace

    from hwnas.latency.trace import resolve_method

    existing = LatencyTable.load(path) if cfg.method == "auto" and path.exists() else None
    cfg = replace(cfg, method=resolve_method(cfg.method, runner, existing, cfg.max_keys))
    if cfg.method == "trace" and not getattr(runner, "op_profiling", False):  # before any file is written
        raise HwnasError(getattr(runner, "no_op_profiling", None)
                         or f"runner {runner.name!r} has no op profiler hwnas can read: profile with --method one-op")
    table = _open_table(path, profile, space, cfg, runtime_version, delegate, threads, resume)
    _stamp_fingerprint(table, runner)
    try:
        return _measure_missing(table, profile, space, cfg, runner, delegate, threads, cache, on_progress)
    except HwnasError as exc:  # what was measured is saved: say how to continue
        raise HwnasError(f"{exc} ({len(table.entries)} measured keys are saved in {path}: run the "
                         f"same command again with --resume to continue)") from None


def _stamp_fingerprint(table: LatencyTable, runner: Any) -> None:
    """Stamp a new table with the fingerprint of the machine measuring it; refuse to continue a
    table measured on another machine (its entries would mix two computers)."""
    from hwnas.latency.fingerprint import describe, runner_fingerprint

    fp = runner_fingerprint(runner)
    have = table.metadata.get("fingerprint")
    if isinstance(have, dict) and have.get("id") != fp["id"] and table.entries:
        raise HwnasError(f"{table.path} was measured on {describe(have)}; this machine is {describe(fp)}: "
                         f"write to another --tables-dir or remove the file")
    if have is None and not table.entries:
        table.metadata["fingerprint"] = fp
        table.save()


def _measure_missing(table: LatencyTable, profile: DeviceProfile, space: SearchSpace, cfg: ProfileConfig,
                     runner: Any, delegate: str, threads: int, cache: OpModelCache | None,
                     on_progress: Callable[[str, int, int], None] | None) -> LatencyTable:
    """Export and measure the keys ``table`` still lacks (its settings were checked)."""
    from hwnas.runners.base import MeasureConfig

    mcfg = MeasureConfig(threads=threads, warmup=cfg.warmup, runs=cfg.runs, delegate=delegate,
                         repetitions=cfg.repetitions, cool_down=cfg.cool_down, sustained_s=cfg.sustained_s)
    if cfg.method == "trace":
        from hwnas.latency.opmodels import SubnetModelCache
        from hwnas.latency.trace import trace_profile

        subnets = None
        if cache is not None:  # next to the one-op models the caller chose (tests: a temporary folder)
            subnets = SubnetModelCache(space, cfg.runtime, Path(cache.dir).parent.parent / "subnets",
                                       precision=cfg.precision)
        return trace_profile(table, space, cfg, runner, mcfg, cache=subnets, on_progress=on_progress)
    ops = space_ops(space)
    todo = table.unfinished(ops, cfg.rounds)
    if cfg.max_keys is not None:
        todo = todo[: cfg.max_keys]
    cache = cache or OpModelCache(cfg.runtime, precision=cfg.precision)
    total = len(todo) + sum(cfg.rounds - table.rounds_done(k) for k in todo)
    done = 0

    def progress(key: str) -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(key, done, total)

    models = {}
    for key in todo:  # export phase: the measurement rounds then run back to back
        models[key] = cache.get(key, ops[key])
        progress(key)
    guard = None
    if cfg.canary and todo:
        # the op with the most MACs: long enough to time precisely
        ref = max(todo, key=lambda k: op_costs(ops[k]).macs)
        guard = runner_canary(runner, models[ref], mcfg, max_wait_s=cfg.canary_max_wait_s)

    def commit(key: str, m: Any) -> None:
        table.add(key, merge_round(table.entries.get(key), m, ops[key].op))
        progress(key)

    for r in range(cfg.rounds):
        keys = [k for k in todo if table.rounds_done(k) <= r]
        measure_guarded(keys, lambda k: runner.measure(models[k], mcfg), commit, guard,
                        block=cfg.canary_block)
    if guard is not None:
        table.metadata["last_profile_canary"] = {**guard.summary(), "key": ref}
        table.save()
    return table


def merge_round(entry: dict[str, Any] | None, m: Any, op: str) -> dict[str, Any]:
    """A table entry with one more measured round: ``median_ms`` is the quietest round's median
    (the lowest; disturbances only slow rounds down); ``count`` sums the runs; min / max / std
    cover every round; ``round_spread`` is (max - min) / min of the round medians."""
    import numpy as np

    rnd = {"median_ms": m.center_ms, "mean_ms": m.mean_ms, "std_ms": m.std_ms or 0.0,
           "min_ms": m.min_ms if m.min_ms is not None else m.mean_ms,
           "max_ms": m.max_ms if m.max_ms is not None else m.mean_ms, "count": m.runs}
    rounds = list((entry or {}).get("rounds", [])) + [rnd]
    medians = [x["median_ms"] for x in rounds]
    means = np.array([x["mean_ms"] for x in rounds])
    variances = np.array([x["std_ms"] ** 2 for x in rounds])
    contended = int((entry or {}).get("contended_rounds", 0))
    contended += int(bool(m.extra.get("contended_repetitions", 0)))
    return {
        "count": int(sum(x["count"] for x in rounds)), "mean_ms": float(means.mean()),
        "median_ms": float(min(medians)),
        "std_ms": float(np.sqrt(variances.mean() + means.var())),
        "min_ms": float(min(x["min_ms"] for x in rounds)), "max_ms": float(max(x["max_ms"] for x in rounds)),
        "rounds": rounds, "round_spread": float((max(medians) - min(medians)) / min(medians)),
        "temp_before_c": (entry or {}).get("temp_before_c", m.temp_before_c), "temp_after_c": m.temp_after_c,
        "outliers_rejected": int((entry or {}).get("outliers_rejected", 0)) + int(m.outliers_rejected),
        "contended_rounds": contended, "op": op, "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _runtime_version(runner: Any) -> str:
    fn = getattr(runner, "runtime_version", None)
    try:
        v = fn() if callable(fn) else None
    except Exception:  # a device tool's version is only known after a run
        v = None
    return v or "unknown"


def profile_devices(profiles: Sequence[DeviceProfile], space: SearchSpace, cfg: ProfileConfig, *,
                    tables_dir: str | Path | None = None, resume: bool = False,
                    on_progress: Callable[[str, str, int, int], None] | None = None
                    ) -> dict[str, LatencyTable | HwnasError]:
    """Profile several devices in parallel (one thread each); returns each table or its error.

    One-op models are exported once (shared cache, serialised conversion) and measured on every
    device; a failure on one device does not stop the others.
    """
    cache = OpModelCache(cfg.runtime, precision=cfg.precision)

    def one(p: DeviceProfile):
        cb = (lambda key, d, t: on_progress(p.name, key, d, t)) if on_progress else None
        try:
            return profile_device(p, space, cfg, tables_dir=tables_dir, resume=resume, cache=cache,
                                  on_progress=cb)
        except HwnasError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(profiles))) as pool:
        results = list(pool.map(one, profiles))
    return {p.name: r for p, r in zip(profiles, results)}
