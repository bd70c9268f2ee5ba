"""``hwnas profile``: measure every unique op key of a space on a device and write its latency table.

Each finished key is written to the table atomically, so a profile that is killed or loses its
device halfway resumes where it stopped (``resume=True``). Several devices can be profiled in
parallel (:func:`profile_devices`): one thread per device, sharing the exported one-op models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hwnas.cost import op_costs
from hwnas.devices.profiles import DeviceProfile
from hwnas.errors import HwnasError
from hwnas.latency.keys import space_ops
from hwnas.latency.opmodels import OpModelCache, check_runtime
from hwnas.latency.table import LatencyTable, table_path
from hwnas.spaces.base import SearchSpace


@dataclass(frozen=True)
class ProfileConfig:
    """How to profile. Defaults follow common practice for per-op tables (nn-Meter: warm-up, then
    tens of timed runs, median reported)."""

    runtime: str = "tflite"
    threads: int | None = None
    delegate: str | None = None
    warmup: int = 10
    runs: int = 50
    repetitions: int = 1
    max_keys: int | None = None  # profile at most this many missing keys now (run again to continue)
    cool_down: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: rough host-independent throughput used only by --dry-run estimates before anything is measured
_EST_MACS_PER_S = 2e9
_EST_EXPORT_S = {"tflite": 2.0, "onnx": 0.1, "tflite-int8": 4.0}


def _runner_for(profile: DeviceProfile, runtime: str, transport: Any):
    from hwnas.runners.registry import create_runner, default_runner_name

    name = default_runner_name(profile, runtime)
    if name.endswith("-adb") and transport is None:
        transport = profile.open_transport()
    return create_runner(name, profile, transport if name.endswith("-adb") else None)


def _open_table(path: Path, profile: DeviceProfile, space: SearchSpace, cfg: ProfileConfig,
                runtime_version: str, delegate: str, threads: int, resume: bool) -> LatencyTable:
    if path.exists():
        table = LatencyTable.load(path)
        table.check_compatible(space=space, runtime=cfg.runtime)
        meta = table.metadata
        want = {"device": profile.name, "threads": threads, "delegate": delegate}
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
        device=profile.name, soc=profile.soc, runtime=cfg.runtime, runtime_version=runtime_version,
        delegate=delegate, threads=threads, warmup=cfg.warmup, runs=cfg.runs, space=space, path=path,
        device_name=profile.human_name, repetitions=cfg.repetitions)
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


def plan_profile(profile: DeviceProfile, space: SearchSpace, cfg: ProfileConfig,
                 tables_dir: str | Path | None = None, cache: OpModelCache | None = None) -> ProfilePlan:
    """The keys a profile would measure and an estimate of its duration (``--dry-run``)."""
    check_runtime(cfg.runtime)
    ops = space_ops(space)
    path = table_path(profile.name, space.name, cfg.runtime, tables_dir)
    measured: dict[str, dict] = {}
    if path.exists():
        measured = LatencyTable.load(path).entries
    todo = [k for k in ops if k not in measured]
    if cfg.max_keys is not None:
        todo = todo[: cfg.max_keys]
    cache = cache or OpModelCache(cfg.runtime)
    threads = cfg.threads or profile.cpu.default_threads
    est = 0.0
    for k in todo:
        per_run = op_costs(ops[k]).macs / (_EST_MACS_PER_S * threads) + 1e-4
        est += (cfg.warmup + cfg.runs) * cfg.repetitions * per_run
        est += 0.0 if cache.cached(k) else _EST_EXPORT_S[cfg.runtime]
        est += profile.thermal.fixed_pause_s * cfg.repetitions if cfg.cool_down else 0.0
    return ProfilePlan(profile.name, path, todo, len(measured), est)


def profile_device(profile: DeviceProfile, space: SearchSpace, cfg: ProfileConfig, *,
                   tables_dir: str | Path | None = None, resume: bool = False, transport: Any = None,
                   cache: OpModelCache | None = None,
                   on_progress: Callable[[str, int, int], None] | None = None) -> LatencyTable:
    """Measure the missing op keys of ``space`` on ``profile`` and return the (saved) table.

    ``on_progress(key, done, total)`` is called after every key. Any failure (device lost after the
    transport's retries, unparsable tool output) propagates as HwnasError; everything measured before
    it is already on disk.
    """
    from hwnas.runners.base import MeasureConfig

    check_runtime(cfg.runtime)
    runner = _runner_for(profile, cfg.runtime, transport)
    rt = profile.runtime(cfg.runtime)
    delegate = rt.check_delegate(cfg.delegate)
    threads = cfg.threads or profile.cpu.default_threads
    runtime_version = _runtime_version(runner)
    path = table_path(profile.name, space.name, cfg.runtime, tables_dir)
    table = _open_table(path, profile, space, cfg, runtime_version, delegate, threads, resume)
    ops = space_ops(space)
    todo = table.missing(ops)
    if cfg.max_keys is not None:
        todo = todo[: cfg.max_keys]
    cache = cache or OpModelCache(cfg.runtime)
    mcfg = MeasureConfig(threads=threads, warmup=cfg.warmup, runs=cfg.runs, delegate=delegate,
                         repetitions=cfg.repetitions, cool_down=cfg.cool_down)
    for i, key in enumerate(todo):
        model = cache.get(key, ops[key])
        m = runner.measure(model, mcfg)
        table.add(key, {
            "count": m.runs, "mean_ms": m.mean_ms, "median_ms": m.median_ms if m.median_ms is not None else m.mean_ms,
            "std_ms": m.std_ms or 0.0, "min_ms": m.min_ms if m.min_ms is not None else m.mean_ms,
            "max_ms": m.max_ms if m.max_ms is not None else m.mean_ms,
            "temp_before_c": m.temp_before_c, "temp_after_c": m.temp_after_c,
            "outliers_rejected": m.outliers_rejected, "op": ops[key].op,
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })
        if on_progress is not None:
            on_progress(key, i + 1, len(todo))
    return table


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
    cache = OpModelCache(cfg.runtime)

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
