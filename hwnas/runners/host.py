"""In-process host runners: the LiteRT interpreter (``tflite-host``) and onnxruntime
(``onnx-host``) timing a model on this computer's CPU.

Each measurement builds a fresh interpreter / session with ``threads`` intra-op threads, feeds
random inputs of the model's input shapes and dtypes (fixed seed: reproducible), runs ``warmup``
untimed inferences, then times ``runs`` inferences one by one with ``time.perf_counter_ns``
(injectable). Only the inference call is inside the timed region; inputs are set before it.
Single-run outliers are rejected (Tukey IQR by default) and repetitions pooled, see
:mod:`hwnas.runners.stats`.

Contention: on a small host another busy process slows a measurement by tens of percent (seen
here: +40 % on 2 cores while a model export ran next to it). Before and after every repetition the
runner counts the runnable tasks of the whole machine (``procs_running`` in ``/proc/stat``, Linux);
when other tasks were running it waits and repeats that repetition (up to
:data:`CONTENTION_RETRIES` times) and records what it saw in ``Measurement.extra``
(``contended_repetitions``, ``busy_tasks_max``). On a machine that stays busy (after
:data:`BUSY_STREAK_LIMIT` contended measurements in a row) it stops waiting and only records, so a
busy computer makes measurements noisier, never endless.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.devices.profiles import DeviceProfile
from hwnas.errors import HwnasError
from hwnas.runners.base import MeasureConfig, Measurement, Runner, measurement_from_summary, resolve_config
from hwnas.runners.stats import LatencySummary, combine_summaries, cool_down, robust_summary
from hwnas.runtimes import get_runtime

Invoke = Callable[[], Any]
#: times a repetition that ran next to another busy task is repeated before it is kept as is
CONTENTION_RETRIES = 3
CONTENTION_PAUSE_S = 0.5
#: contended measurements in a row after which the runner stops retrying until it sees a quiet one
BUSY_STREAK_LIMIT = 3


def running_tasks() -> int | None:
    """Runnable tasks on the whole machine right now (``procs_running`` of ``/proc/stat``,
    the reader included), or None where the kernel does not tell (not Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("procs_running"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def package_version(distribution: str) -> str | None:
    """The installed version of a Python distribution (``onnxruntime``), None when missing."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def random_input(shape: tuple[int, ...], dtype: np.dtype[Any], rng: np.random.Generator) -> np.ndarray:
    """Random data of ``shape``/``dtype``: N(0, 1) for floats, the full range for integers."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        lo, hi = max(int(info.min), -128), min(int(info.max), 127)  # keep indices-like inputs small
        return rng.integers(lo, hi + 1, size=shape).astype(dt)
    return rng.standard_normal(size=shape).astype(dt)


class HostRunner(Runner):
    """Shared loop of the in-process runners; subclasses open the model and return ``invoke``."""

    def __init__(
        self,
        profile: DeviceProfile,
        *,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
        load_probe: Callable[[], int | None] = running_tasks,
    ) -> None:
        super().__init__(profile)
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._seed = seed
        self._load_probe = load_probe
        self._busy_streak = 0

    def _other_tasks(self, threads: int) -> int:
        """Runnable tasks besides the measuring thread and its ``threads - 1`` workers (which may
        still spin right after a run); 0 when unknown."""
        n = self._load_probe()
        return 0 if n is None else max(0, n - threads)

    @abstractmethod
    def open(self, model: Path, threads: int, delegate: str, rng: np.random.Generator) -> Invoke:
        """Load ``model`` and return a no-argument callable that runs one inference."""

    def runtime_version(self) -> str | None:
        """The runtime package's version (the runtime's ``host_package``), recorded in every
        measurement."""
        return package_version(get_runtime(self.runtime).host_package)

    def measure(self, model: str | Path, config: MeasureConfig | None = None, **overrides: Any) -> Measurement:
        cfg = resolve_config(config, overrides)
        path = self._check_model(model)
        if cfg.op_profiling and not self.op_profiling:
            raise HwnasError(self.no_op_profiling)
        delegate = self.profile.runtime(self.runtime).check_delegate(cfg.delegate)
        threads = cfg.threads or self.profile.cpu.default_threads
        th = self.profile.thermal
        reps: list[LatencySummary] = []
        all_times: list[float] = []
        rejected = 0
        waited = 0.0
        init_ms = first_ms = None
        contended = busy_max = 0
        op_profile: list[dict[str, Any]] | None = None
        for rep in range(cfg.repetitions):
            if cfg.cool_down:
                # The host has no temperature reader: a cool-down is the profile's fixed pause.
                waited += cool_down(None, threshold_c=None, max_wait_s=th.max_wait_s, poll_s=th.poll_s,
                                    fixed_pause_s=th.fixed_pause_s, sleep=self._sleep).waited_s
            retries = CONTENTION_RETRIES if self._busy_streak < BUSY_STREAK_LIMIT else 0
            for attempt in range(retries + 1):
                busy = self._other_tasks(threads)
                times, init, first, op_profile = self._timed_runs(path, threads, delegate, cfg)
                busy = max(busy, self._other_tasks(threads))
                busy_max = max(busy_max, busy)
                if not busy:
                    break
                if attempt < retries:
                    self._sleep(CONTENTION_PAUSE_S)
                    waited += CONTENTION_PAUSE_S
            contended += int(busy > 0)
            self._busy_streak = self._busy_streak + 1 if busy else 0
            if rep == 0:
                init_ms, first_ms = init, first
            summary, dropped = robust_summary(times, cfg.outliers)
            reps.append(summary)
            rejected += dropped
            all_times.extend(times)
        pooled = combine_summaries(reps, reject=cfg.outliers)
        extra: dict[str, Any] = {"contended_repetitions": contended, "busy_tasks_max": busy_max}
        if cfg.sustained_s:
            extra["sustained_s"] = cfg.sustained_s
        if op_profile is not None:
            extra["op_profile"] = op_profile
        return measurement_from_summary(
            pooled, runner=self.name, runtime=self.runtime, runtime_version=self.runtime_version(),
            device=self.profile.name, model=path.name, delegate=delegate, threads=threads,
            cpu_mask=None, warmup=cfg.warmup, outliers_rejected=rejected,
            repetitions_rejected=cfg.repetitions - pooled.repetitions, times_ms=tuple(all_times),
            init_ms=init_ms, first_ms=first_ms, cooldown_s=waited, extra=extra,
        )

    #: whether :meth:`open_profiled` records per-node times (``MeasureConfig.op_profiling``)
    op_profiling: bool = False
    #: the error when op profiling is asked of a runner without it
    no_op_profiling: str = "this runner cannot profile single ops"

    def open_profiled(self, model: Path, threads: int, delegate: str, rng: np.random.Generator
                      ) -> tuple[Invoke, Callable[[int], list[dict[str, Any]]]]:
        """Like :meth:`open`, with the runtime's op profiler on; the second callable, given the
        number of warm-up inferences to leave out, ends profiling and returns one row per node in
        execution order (``node_type``, ``name``, ``avg_ms``, ``median_ms``, ``count``)."""
        raise HwnasError(self.no_op_profiling)

    def _timed_runs(self, path: Path, threads: int, delegate: str, cfg: MeasureConfig
                    ) -> tuple[list[float], float, float, list[dict[str, Any]] | None]:
        """One repetition: open the model, ``warmup`` untimed inferences, ``sustained_s`` seconds of
        continuous untimed inference (sustained latency), then ``runs`` timed inferences. Returns
        the timed runs (ms), the open time, the first inference's time (ms) and, with
        ``op_profiling``, the per-node rows of the timed runs."""
        rng = np.random.default_rng(self._seed)
        t0 = self._clock_ns()
        finish = None
        if cfg.op_profiling:
            invoke, finish = self.open_profiled(path, threads, delegate, rng)
        else:
            invoke = self.open(path, threads, delegate, rng)
        init_ms = (self._clock_ns() - t0) / 1e6
        times: list[float] = []
        first_ms = 0.0
        untimed = 0
        for i in range(cfg.warmup + cfg.runs):
            if i == cfg.warmup and cfg.sustained_s:
                untimed += self._sustain(invoke, cfg.sustained_s)
            start = self._clock_ns()
            invoke()
            elapsed_ms = (self._clock_ns() - start) / 1e6
            if i == 0:
                first_ms = elapsed_ms
            if i >= cfg.warmup:
                times.append(elapsed_ms)
        rows = finish(cfg.warmup + untimed) if finish is not None else None
        return times, init_ms, first_ms, rows

    def _sustain(self, invoke: Invoke, seconds: float) -> int:
        """Run inferences back to back for ``seconds`` (untimed); returns how many ran."""
        end = self._clock_ns() + int(seconds * 1e9)
        n = 0
        while True:
            invoke()
            n += 1
            if self._clock_ns() >= end:
                return n


class TfliteHostRunner(HostRunner):
    """``tflite-host``: ``ai_edge_litert.interpreter.Interpreter`` with ``num_threads``.

    Delegates: ``xnnpack`` (the interpreter's default XNNPACK delegate) and ``cpu`` (builtin
    kernels only, ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``), matching ``benchmark_model``'s
    ``--use_xnnpack=true|false``. Float and int8 models alike (int8 inputs get random values over
    their full range).
    """

    name = "tflite-host"
    runtime = "tflite"
    no_op_profiling = ("runner 'tflite-host' cannot profile single ops: LiteRT's Python interpreter "
                       "(ai-edge-litert) has no op profiler; profile with --method one-op, or on a "
                       "device (tflite-adb: benchmark_model --enable_op_profiling)")

    def open(self, model: Path, threads: int, delegate: str, rng: np.random.Generator) -> Invoke:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if delegate not in ("cpu", "xnnpack"):
            raise HwnasError(f"runner {self.name!r} runs the cpu and xnnpack delegates in-process, "
                             f"not {delegate!r}; measure {delegate} on a device with tflite-adb")
        resolver = (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if delegate == "cpu"
                    else OpResolverType.AUTO)
        try:
            interpreter = Interpreter(model_path=str(model), num_threads=threads,
                                      experimental_op_resolver_type=resolver)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise HwnasError(f"LiteRT cannot load {model}: {exc}") from None
        for detail in interpreter.get_input_details():
            shape = tuple(int(d) for d in detail["shape"])
            interpreter.set_tensor(detail["index"], random_input(shape, detail["dtype"], rng))
        return interpreter.invoke


_ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
    "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
}
_ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "xnnpack": "XnnpackExecutionProvider"}


class OnnxHostRunner(HostRunner):
    """``onnx-host``: ``onnxruntime.InferenceSession`` with ``intra_op_num_threads = threads``.

    One inter-op thread and sequential execution, so ``threads`` is the only parallelism knob
    (as ``onnxruntime_perf_test -x``). Symbolic input dimensions are set to 1.
    """

    name = "onnx-host"
    runtime = "onnx"
    op_profiling = True

    def open(self, model: Path, threads: int, delegate: str, rng: np.random.Generator) -> Invoke:
        return self._open(model, threads, delegate, rng, None)

    def open_profiled(self, model: Path, threads: int, delegate: str, rng: np.random.Generator
                      ) -> tuple[Invoke, Callable[[int], list[dict[str, Any]]]]:
        """onnxruntime's own profiler (``SessionOptions.enable_profiling``): a Chrome-trace JSON
        with one ``Node`` event per executed node and run; read, summarised and deleted."""
        import tempfile

        tmp = tempfile.mkdtemp(prefix="hwnas-ort-profile-")
        session_box: list[Any] = []
        invoke = self._open(model, threads, delegate, rng, (tmp, session_box))

        def finish(skip_runs: int) -> list[dict[str, Any]]:
            import shutil

            try:
                trace = Path(session_box[0].end_profiling())
                return ort_profile_rows(read_ort_trace(trace), skip_runs=skip_runs, source=str(model))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

        return invoke, finish

    def _open(self, model: Path, threads: int, delegate: str, rng: np.random.Generator,
              profiling: tuple[str, list[Any]] | None) -> Invoke:
        import onnxruntime as ort

        provider = _ORT_PROVIDERS.get(delegate)
        if provider is None or provider not in ort.get_available_providers():
            raise HwnasError(f"runner {self.name!r}: execution provider {delegate!r} is not available "
                             f"in this onnxruntime build (available: {ort.get_available_providers()})")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if profiling is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(profiling[0]) / "ort")
        try:
            session = ort.InferenceSession(str(model), sess_options=options, providers=[provider])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise HwnasError(f"onnxruntime cannot load {model}: {exc}") from None
        if profiling is not None:
            profiling[1].append(session)
        feeds = {}
        for inp in session.get_inputs():
            shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in inp.shape)
            dtype = _ORT_DTYPES.get(inp.type)
            if dtype is None:
                raise HwnasError(f"onnx-host: input {inp.name!r} of {model} has type {inp.type}, "
                                 f"supported: {', '.join(_ORT_DTYPES)}")
            feeds[inp.name] = random_input(shape, np.dtype(dtype), rng)
        return lambda: session.run(None, feeds)


def read_ort_trace(path: str | Path) -> list[dict[str, Any]]:
    """The events of an onnxruntime profile (a JSON list of Chrome-trace events)."""
    import json

    from hwnas.io import read_text

    try:
        events = json.loads(read_text(Path(path), "onnxruntime profile"))
    except json.JSONDecodeError as exc:
        raise HwnasError(f"onnxruntime profile {path} is not JSON: {exc}") from None
    if not isinstance(events, list):
        raise HwnasError(f"onnxruntime profile {path}: expected a JSON list of events, got "
                         f"{type(events).__name__}")
    return events


def ort_profile_rows(events: list[dict[str, Any]], *, skip_runs: int = 0,
                     source: str = "onnxruntime profile") -> list[dict[str, Any]]:
    """Per-node times of an onnxruntime profile, leaving out the first ``skip_runs`` runs.

    Each ``model_run`` Session event is one inference; the ``Node`` events ending in
    ``_kernel_time`` inside it are its nodes (durations in microseconds). One row per node name in
    execution order: ``node_type`` (the ONNX op), ``name`` (the node name without the suffix),
    ``avg_ms`` (interquartile mean over the runs), ``median_ms`` and ``count`` (runs it executed
    in); the first row also carries
    ``run_ms``, the median duration of the whole run.
    """
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])[skip_runs:]
    if not runs:
        raise HwnasError(f"{source}: the onnxruntime profile holds no model_run event after "
                         f"{skip_runs} warm-up runs")
    nodes = sorted((e for e in events if e.get("cat") == "Node"
                    and str(e.get("name", "")).endswith("_kernel_time")), key=lambda e: e["ts"])
    starts = np.array([r["ts"] for r in runs])
    ends = starts + np.array([r["dur"] for r in runs])
    per: dict[str, list[float]] = {}
    kind: dict[str, str] = {}
    for e in nodes:
        i = int(np.searchsorted(starts, e["ts"], side="right")) - 1
        if i < 0 or e["ts"] > ends[i]:
            continue  # a warm-up run's node
        name = e["name"][: -len("_kernel_time")]
        per.setdefault(name, []).append(float(e["dur"]) / 1000.0)
        kind.setdefault(name, str((e.get("args") or {}).get("op_name", "")))
    if not per:
        raise HwnasError(f"{source}: the onnxruntime profile holds no node events inside its runs")
    from scipy.stats import trim_mean

    # avg_ms: the interquartile mean, robust to a run that was preempted and finer than the median
    # of durations the profiler rounds to whole microseconds
    rows = [{"node_type": kind[n], "name": n, "avg_ms": float(trim_mean(v, 0.25)),
             "median_ms": float(np.median(v)), "count": len(v)} for n, v in per.items()]
    rows[0]["run_ms"] = float(np.median([r["dur"] for r in runs])) / 1000.0
    return rows
