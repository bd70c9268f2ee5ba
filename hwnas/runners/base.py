"""What every runner shares: the measurement settings, the :class:`Measurement` record, and the
loop that runs a benchmark binary on a device through a transport.

A runner measures one model file on one device with one runtime. Host runners time the model
in-process; device runners push the model, run ``benchmark_model`` / ``onnxruntime_perf_test``
through a :class:`Transport` (``hwnas.devices.transport``) and parse what the tool prints.
"""

from __future__ import annotations

import shlex
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from hwnas.devices.profiles import DeviceProfile, Runtime
from hwnas.devices.thermal import temperature_reader
from hwnas.errors import HwnasError
from hwnas.runtimes import get_runtime
from hwnas.devices.parsers import decode_output
from hwnas.runners.stats import (
    OUTLIER_METHODS,
    CoolDownResult,
    LatencySummary,
    combine_summaries,
    cool_down,
)


class ShellResultLike(Protocol):
    exit_code: int
    stdout: Any
    stderr: Any


class TransportLike(Protocol):
    """The part of ``hwnas.devices.transport.Transport`` that runners use."""

    name: str

    def shell(self, cmd: list[str] | str, timeout: float | None = ...) -> ShellResultLike: ...

    def push(self, local: Path, remote: str) -> Any: ...


@dataclass(frozen=True)
class MeasureConfig:
    """How to measure. None means "the device profile's default".

    ``warmup`` and ``runs`` are exact counts (device runners pass ``--min_secs=0`` so that
    ``benchmark_model`` does not add runs to fill a time budget). ``repetitions`` repeats the whole
    measurement, with a cool-down before each, and pools the repetitions (a disturbed repetition
    is dropped when there are four or more). ``outliers`` rejects single runs (host runners, which
    see every run) with Tukey's IQR fences or the MAD z-score. ``sustained_s`` measures sustained
    latency: after the warm-up, the model runs continuously for that many seconds before the timed
    runs (what a watch or a dev kit shows once warm; 0: burst latency). ``op_profiling`` asks the
    runtime's profiler for per-node times (``Measurement.extra["op_profile"]``).
    """

    threads: int | None = None
    warmup: int = 10
    runs: int = 50
    delegate: str | None = None
    cores: str | None = None
    repetitions: int = 1
    outliers: str = "iqr"
    op_profiling: bool = False
    sustained_s: float = 0.0
    cool_down: bool = True
    timeout_s: float = 600.0

    def validated(self) -> MeasureConfig:
        """Self, after checking ranges (raises :class:`HwnasError` naming the bad setting)."""
        checks = (("threads", self.threads is None or self.threads >= 1, "at least 1"),
                  ("warmup", self.warmup >= 0, "0 or more"),
                  ("runs", self.runs >= 1, "at least 1"),
                  ("repetitions", self.repetitions >= 1, "at least 1"),
                  ("timeout_s", self.timeout_s > 0, "positive"),
                  ("sustained_s", self.sustained_s >= 0, "0 or more seconds"),
                  ("outliers", self.outliers in OUTLIER_METHODS, f"one of {', '.join(OUTLIER_METHODS)}"))
        for name, ok, allowed in checks:
            if not ok:
                raise HwnasError(f"measure setting {name} = {getattr(self, name)!r} must be {allowed}")
        return self


def resolve_config(config: MeasureConfig | None, overrides: Mapping[str, Any]) -> MeasureConfig:
    """``config`` (or the defaults) with keyword overrides applied, validated."""
    base = config or MeasureConfig()
    unknown = set(overrides) - set(MeasureConfig.__dataclass_fields__)
    if unknown:
        raise HwnasError(f"unknown measure setting(s) {sorted(unknown)}; allowed: "
                         f"{', '.join(MeasureConfig.__dataclass_fields__)}")
    return replace(base, **overrides).validated()


@dataclass(frozen=True)
class Measurement:
    """One model measured on one device/runtime: settings, summary times (ms) and conditions.

    ``times_ms`` holds every timed run when the runner sees them (host runners); device tools
    only print summaries, so it is empty there. ``runs`` is the number of timed runs the summary
    covers (all repetitions together, after outlier rejection). ``outliers_rejected`` counts single
    runs dropped (host runners), ``repetitions_rejected`` whole repetitions dropped.
    """

    runner: str
    runtime: str
    runtime_version: str | None
    device: str
    model: str
    delegate: str
    threads: int
    cpu_mask: str | None
    warmup: int
    runs: int
    mean_ms: float
    median_ms: float | None
    std_ms: float | None
    min_ms: float | None
    max_ms: float | None
    percentiles_ms: Mapping[str, float] = field(default_factory=dict)
    repetitions: int = 1
    outliers_rejected: int = 0
    repetitions_rejected: int = 0
    times_ms: tuple[float, ...] = ()
    init_ms: float | None = None
    first_ms: float | None = None
    temp_before_c: float | None = None
    temp_after_c: float | None = None
    cooldown_s: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def center_ms(self) -> float:
        """The median when the runner or tool reports one (robust), else the mean."""
        return self.median_ms if self.median_ms is not None else self.mean_ms

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (tuples become lists, mappings become dicts)."""
        out = asdict(self)
        out["percentiles_ms"] = dict(self.percentiles_ms)
        out["times_ms"] = list(self.times_ms)
        out["extra"] = _plain(dict(self.extra))
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return _plain(asdict(value))
    return value


def measurement_from_summary(summary: LatencySummary, **fields: Any) -> Measurement:
    """Build a :class:`Measurement` from a pooled summary plus the descriptive fields."""
    return Measurement(
        mean_ms=summary.mean, median_ms=summary.median, std_ms=summary.std, min_ms=summary.min,
        max_ms=summary.max, percentiles_ms=dict(summary.percentiles), runs=summary.count,
        repetitions=summary.repetitions, **fields,
    )


class Runner(ABC):
    """Measures model files on one device with one runtime. Subclasses set ``name``/``runtime``."""

    name: ClassVar[str]
    runtime: ClassVar[str]

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile

    @abstractmethod
    def measure(self, model: str | Path, config: MeasureConfig | None = None, **overrides: Any) -> Measurement:
        """Measure ``model``; ``overrides`` are :class:`MeasureConfig` fields (``runs=20``)."""

    def preflight(self) -> None:
        """Check, before any model is exported or any file written, that this runner can measure
        (device runners: the device answers and its benchmark tool is there); raises HwnasError.
        Host runners need nothing."""

    def _check_model(self, model: str | Path) -> Path:
        path = Path(model)
        if not path.is_file():
            raise HwnasError(f"model file {path} does not exist")
        suffix = get_runtime(self.runtime).suffix
        if path.suffix != suffix:
            raise HwnasError(f"runner {self.name!r} measures {suffix} files, got {path}")
        return path


class DeviceToolRunner(Runner):
    """Runs a benchmark binary through a transport: check binary, push model, cool down, run,
    parse, repeat, pool. Subclasses build the command and parse the output."""

    tool: ClassVar[str]
    #: whether ``MeasureConfig.op_profiling`` gives ``extra["op_profile"]`` rows
    op_profiling: ClassVar[bool] = False

    def __init__(
        self,
        profile: DeviceProfile,
        transport: TransportLike,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        temperature: Callable[[], float | None] | None = None,
    ) -> None:
        super().__init__(profile)
        self.transport = transport
        self._sleep = sleep
        self._clock = clock
        if temperature is None:
            temperature = temperature_reader(profile.thermal, transport)
        self._temperature = temperature

    # -- hooks --------------------------------------------------------------------------
    @abstractmethod
    def build_command(self, binary: str, remote_model: str, *, threads: int, delegate: str,
                      config: MeasureConfig) -> list[str]:
        """The tool's argv (without taskset)."""

    @abstractmethod
    def parse(self, text: str, source: str) -> tuple[LatencySummary, dict[str, Any]]:
        """Summary in ms for one run of the tool plus extras (init/first ms, delegate info...)."""

    def sustain_command(self, binary: str, remote_model: str, *, threads: int, delegate: str,
                        config: MeasureConfig) -> list[str] | None:
        """The argv run right before each repetition to keep the model running for
        ``config.sustained_s`` seconds, for tools whose own flags cannot (None: not needed)."""
        return None

    def effective_warmup(self, config: MeasureConfig) -> int:
        return config.warmup

    # -- the loop -----------------------------------------------------------------------
    def measure(self, model: str | Path, config: MeasureConfig | None = None, **overrides: Any) -> Measurement:
        cfg = resolve_config(config, overrides)
        path = self._check_model(model)
        rt = self.profile.runtime(self.runtime)
        delegate = rt.check_delegate(cfg.delegate)
        threads = cfg.threads or self.profile.cpu.default_threads
        mask = self.profile.cpu.mask(cfg.cores)
        binary = self.ensure_binary(rt)
        remote_model = self.push_model(path)
        argv = self.build_command(binary, remote_model, threads=threads, delegate=delegate, config=cfg)
        sustain = self.sustain_command(binary, remote_model, threads=threads, delegate=delegate, config=cfg)
        if mask:
            argv = ["taskset", mask, *argv]
            sustain = ["taskset", mask, *sustain] if sustain else None
        summaries: list[LatencySummary] = []
        extras: list[dict[str, Any]] = []
        temp_before: float | None = None
        waited = 0.0
        for rep in range(cfg.repetitions):
            if cfg.cool_down:
                cd = self._cool_down()
                waited += cd.waited_s
                current = cd.end_c if cd.end_c is not None else self._read_temperature()
            else:
                current = self._read_temperature()
            if rep == 0:
                temp_before = current
            if sustain:
                self.run_tool(sustain, cfg.timeout_s + cfg.sustained_s, parse=False)
            text = self.run_tool(argv, cfg.timeout_s + cfg.sustained_s)
            summary, extra = self.parse(text, f"{self.tool} on {self.profile.name}")
            if summary.count <= 0:  # very old tools print only the average: trust the request
                summary = replace(summary, count=cfg.runs)
            summaries.append(summary)
            extras.append(extra)
        pooled = combine_summaries(summaries, reject=cfg.outliers)
        first_extra = extras[0]
        return measurement_from_summary(
            pooled, runner=self.name, runtime=self.runtime,
            runtime_version=first_extra.pop("runtime_version", None), device=self.profile.name,
            model=path.name, delegate=delegate, threads=threads, cpu_mask=mask,
            warmup=self.effective_warmup(cfg), init_ms=first_extra.pop("init_ms", None),
            first_ms=first_extra.pop("first_ms", None), temp_before_c=temp_before,
            temp_after_c=self._read_temperature(), cooldown_s=waited,
            repetitions_rejected=cfg.repetitions - pooled.repetitions,
            extra={"command": shlex.join(argv), **({"sustain_command": shlex.join(sustain)} if sustain else {}),
                   **({"sustained_s": cfg.sustained_s} if cfg.sustained_s else {}), **first_extra},
        )

    def preflight(self) -> None:
        """The device answers (a wrong serial or an unplugged cable fails here, after the
        transport's retries) and its benchmark tool is executable."""
        self.ensure_binary(self.profile.runtime(self.runtime))

    def ensure_binary(self, rt: Runtime) -> str:
        """The tool's path on the device, after checking it exists and is executable."""
        where = f"runtimes.{rt.name}.binary in {self.profile.source or 'the profile'}"
        if not rt.binary:
            raise HwnasError(f"device profile {self.profile.name!r} sets no {where}; "
                             f"set it to the path of {self.tool} on the device")
        result = self.transport.shell(["test", "-x", rt.binary], timeout=30)
        if result.exit_code != 0 and self.profile.is_local:
            raise HwnasError(f"{self.tool} not found or not executable at {rt.binary} on this computer "
                             f"(looked there because of {where}); build or copy it there and chmod +x it")
        if result.exit_code != 0:
            spec = get_runtime(rt.name)
            url = spec.binary_urls.get(self.profile.abi)
            get = f"download {url}" if url else "get a build for this ABI"
            serial = self.profile.connection.adb_serial
            adb = f"adb -s {serial}" if serial else "adb"
            raise HwnasError(
                f"{self.tool} not found or not executable at {rt.binary} on device "
                f"{self.profile.name!r} (looked there because of {where}). To install it: {get} "
                f"({self.profile.abi}) {spec.build_hint}; then run "
                f"'{adb} push {self.tool} {rt.binary}' and '{adb} shell chmod 755 {rt.binary}'"
            )
        return rt.binary

    def push_model(self, path: Path) -> str:
        """Copy the model into the profile's remote work dir (local profiles without one: as is)."""
        work_dir = self.profile.remote_work_dir
        if work_dir is None:
            return str(path.resolve())
        mk = self.transport.shell(["mkdir", "-p", work_dir], timeout=30)
        if mk.exit_code != 0:
            raise HwnasError(f"cannot create {work_dir} on device {self.profile.name!r} "
                             f"(remote_work_dir): {_first_lines(mk)}")
        remote = f"{work_dir.rstrip('/')}/{path.name}"
        self.transport.push(path, remote)
        return remote

    def run_tool(self, argv: list[str], timeout: float, parse: bool = True) -> str:
        """Run the tool; stdout and stderr together (the tools log to stderr). ``parse=False``: a
        run whose output is not a measurement (sustain), only its exit code is checked."""
        result = self.transport.shell(argv, timeout=timeout)
        text = decode_output(result.stdout or "") + "\n" + decode_output(result.stderr or "")
        if result.exit_code != 0 and parse:
            # Let the parser explain the failure with the tool's own error lines when it can.
            try:
                self.parse(text, f"{self.tool} on {self.profile.name}")
            except HwnasError as exc:
                raise HwnasError(f"{exc} (exit code {result.exit_code})") from None
            raise HwnasError(
                f"{self.tool} on {self.profile.name} exited with code {result.exit_code}: "
                f"{_first_lines(result)} (command: {shlex.join(argv)})"
            )
        if result.exit_code != 0:
            raise HwnasError(f"{self.tool} on {self.profile.name} exited with code {result.exit_code}: "
                             f"{_first_lines(result)} (command: {shlex.join(argv)})")
        return text

    def _cool_down(self) -> CoolDownResult:
        th = self.profile.thermal
        return cool_down(self._temperature, threshold_c=th.cooldown_c, max_wait_s=th.max_wait_s,
                         poll_s=th.poll_s, fixed_pause_s=th.fixed_pause_s, sleep=self._sleep,
                         clock=self._clock)

    def _read_temperature(self) -> float | None:
        return self._temperature() if self._temperature is not None else None


def _first_lines(result: ShellResultLike, limit: int = 5) -> str:
    text = decode_output(result.stdout or "") + "\n" + decode_output(result.stderr or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()][:limit]
    return " | ".join(lines) if lines else "(no output)"


def summary_from_tool(count: int | None, mean: float, *, median: float | None = None,
                      std: float | None = None, min_: float | None = None, max_: float | None = None,
                      percentiles: Mapping[str, float] | None = None) -> LatencySummary:
    """A :class:`LatencySummary` from the numbers a benchmark tool printed (already in ms)."""
    return LatencySummary(count=count or 0, mean=mean, median=median, std=std, min=min_, max=max_,
                          percentiles=dict(percentiles or {}))


def ms(value_us: float | None) -> float | None:
    """Microseconds to milliseconds, keeping None."""
    return None if value_us is None else value_us / 1000.0

