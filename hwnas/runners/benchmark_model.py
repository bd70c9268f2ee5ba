"""On-device TFLite runner: TFLite/LiteRT ``benchmark_model`` run through a transport.

Command (``taskset`` only when the profile pins cores)::

    taskset MASK BIN --graph=MODEL --num_threads=T --warmup_runs=W --num_runs=N
        --min_secs=0 --warmup_min_secs=0|S --use_xnnpack=true|false [--use_gpu=true]
        [--use_nnapi=true] [--enable_op_profiling=true]

The ``npu`` delegate takes its flags from the profile's ``[runtimes.tflite.npu]`` table
(:class:`hwnas.devices.profiles.Npu`): LiteRT's ``benchmark_model`` with ``--use_npu=true
--dispatch_library_path=DIR [--compiler_plugin_library_path=DIR] [--require_full_delegation=true]``,
or a vendor delegate library through ``--external_delegate_path=LIB
[--external_delegate_options=key:value;...]`` (Qualcomm's QNN TFLite delegate).

``--min_secs=0 --warmup_min_secs=0`` make the run counts exact; by default the tool keeps running
until one second has passed, so the count would depend on the model's speed. Sustained latency
(``MeasureConfig.sustained_s``) sets ``--warmup_min_secs`` to that many seconds: the warm-up runs
continuously that long before the timed runs.

:func:`parse_benchmark_model` reads what the tool prints, as captured from devices
(``tests/fixtures/real-outputs/``): every generation (``INFO:``-prefixed and bare lines, old
``Key : [value]`` headers, ``adb logcat`` prefixes, scientific notation, the old "Average inference
timings" summary, op-profiling tables in both column layouts). A run that failed (``Benchmarking
failed.``, delegate errors, no timing lines at all) raises :class:`~hwnas.errors.HwnasError`
quoting the tool's own error lines and the first lines it printed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hwnas.devices.profiles import Npu
from hwnas.errors import HwnasError
from hwnas.runners.base import DeviceToolRunner, MeasureConfig, ms, summary_from_tool
from hwnas.runners.stats import LatencySummary
from hwnas.runners.tool_output import ERRORISH_RE, KV_RE, NUM, Line, num, quote, split_lines

DELEGATE_FLAGS: dict[str, tuple[str, ...]] = {
    "cpu": ("--use_xnnpack=false",),  # the reference CPU kernels (recent tools default to XNNPACK)
    "xnnpack": ("--use_xnnpack=true",),
    "gpu": ("--use_gpu=true",),
    "nnapi": ("--use_nnapi=true",),
}


def benchmark_model_command(binary: str, model: str, *, threads: int, warmup: int, runs: int,
                            delegate: str, op_profiling: bool = False, npu: Npu | None = None,
                            sustained_s: float = 0.0) -> list[str]:
    """The ``benchmark_model`` argv for one measurement (no taskset); ``npu`` gives the flags of the
    ``npu`` delegate. ``sustained_s`` > 0 keeps the warm-up running for at least that many seconds
    (``--warmup_min_secs``) before the timed runs: sustained latency."""
    if delegate == "npu":
        if npu is None:
            raise HwnasError("delegate 'npu' needs the device profile's [runtimes.tflite.npu] table")
        flags = npu.flags()
    else:
        flags = DELEGATE_FLAGS[delegate]
    argv = [binary, f"--graph={model}", f"--num_threads={threads}", f"--warmup_runs={warmup}",
            f"--num_runs={runs}", "--min_secs=0", f"--warmup_min_secs={sustained_s:g}", *flags]
    if op_profiling:
        argv.append("--enable_op_profiling=true")
    return argv


class BenchmarkModelRunner(DeviceToolRunner):
    """``tflite-adb``: TFLite ``benchmark_model`` on an ADB device (or locally via ``local``)."""

    name = "tflite-adb"
    runtime = "tflite"
    tool = "benchmark_model"
    op_profiling = True

    def build_command(self, binary: str, remote_model: str, *, threads: int, delegate: str,
                      config: MeasureConfig) -> list[str]:
        return benchmark_model_command(binary, remote_model, threads=threads, warmup=config.warmup,
                                       runs=config.runs, delegate=delegate,
                                       op_profiling=config.op_profiling,
                                       npu=self.profile.runtime(self.runtime).npu,
                                       sustained_s=config.sustained_s)

    def parse(self, text: str, source: str) -> tuple[LatencySummary, dict[str, Any]]:
        r = parse_benchmark_model(text, source=source)
        pct = {k: v / 1000.0 for k, v in (("p5", r.p5_us), ("p50", r.median_us), ("p95", r.p95_us))
               if v is not None}
        summary = summary_from_tool(r.count, r.avg_us / 1000.0, median=ms(r.median_us),
                                    std=ms(r.std_us), min_=ms(r.min_us), max_=ms(r.max_us),
                                    percentiles=pct)
        extra: dict[str, Any] = {
            "runtime_version": r.tf_version, "init_ms": ms(r.init_us), "first_ms": ms(r.first_us),
            "warmup_avg_ms": ms(r.warmup_avg_us), "timing_source": r.timing_source,
            "memory_mb": {"kind": r.memory_kind, "init": r.memory_init_mb,
                          "overall": r.memory_overall_mb},
            "delegate_nodes": [
                {"delegate": d.delegate, "replaced": d.replaced, "total": d.total,
                 "partitions": d.partitions} for d in r.delegate_nodes],
            "fully_delegated": r.fully_delegated,
        }
        if r.op_profile is not None:
            extra["op_profile"] = [
                {"node_type": row.node_type, "name": row.name, "avg_ms": row.avg_ms,
                 "percent": row.percent} for row in r.op_profile.run_order]
            extra["op_profile_by_type"] = [
                {"node_type": row.node_type, "count": row.count, "avg_ms": row.avg_ms}
                for row in r.op_profile.by_node_type]
        return summary, extra


# --------------------------------------------------------------------------------------------
# Output parser


@dataclass(frozen=True)
class TimingStats:
    """One ``count=... first=... curr=... min=... max=... avg=... std=...`` line (microseconds).

    Warm-up lines of some versions carry only ``count`` and ``curr``; the rest stay None.
    """

    count: int
    first_us: float | None = None
    curr_us: float | None = None
    min_us: float | None = None
    max_us: float | None = None
    avg_us: float | None = None
    std_us: float | None = None
    p5_us: float | None = None
    median_us: float | None = None
    p95_us: float | None = None

    @classmethod
    def from_line(cls, text: str) -> TimingStats:
        kv = {k: num(v) for k, v in KV_RE.findall(text)}
        return cls(
            count=int(kv["count"]), first_us=kv.get("first"), curr_us=kv.get("curr"),
            min_us=kv.get("min"), max_us=kv.get("max"), avg_us=kv.get("avg"), std_us=kv.get("std"),
            p5_us=kv.get("p5"), median_us=kv.get("median"), p95_us=kv.get("p95"),
        )


@dataclass(frozen=True)
class OpProfileRow:
    """One row of a "Run Order" / "Top by Computation Time" table (times in ms).

    ``start_ms`` is None in the newer layout, which dropped the ``[start]`` column.
    """

    node_type: str
    first_ms: float
    avg_ms: float
    percent: float
    cdf_percent: float
    mem_kb: float
    times_called: int
    name: str
    start_ms: float | None = None


@dataclass(frozen=True)
class NodeTypeRow:
    """One row of the "Summary by node type" table (times in ms)."""

    node_type: str
    count: int
    avg_ms: float
    avg_percent: float
    cdf_percent: float
    mem_kb: float
    times_called: int


@dataclass(frozen=True)
class OpProfile:
    """One op-profiling section: ``init`` (benchmark initialisation) or ``run`` (regular runs)."""

    section: str
    run_order: tuple[OpProfileRow, ...] = ()
    top_by_time: tuple[OpProfileRow, ...] = ()
    by_node_type: tuple[NodeTypeRow, ...] = ()
    nodes_executed: int | None = None
    nodes_observed: int | None = None
    timings: TimingStats | None = None


@dataclass(frozen=True)
class DelegateNodes:
    """A "Replacing N out of M node(s) with delegate (X) node, yielding P partitions" line."""

    delegate: str
    replaced: int
    total: int
    partitions: int
    subgraph: int | None = None  # None: "for the whole graph"

    @property
    def fraction(self) -> float:
        return self.replaced / self.total if self.total else 0.0


@dataclass(frozen=True)
class DelegateApplied:
    """An "(Explicitly) applied X delegate, and the model graph will be completely/partially
    executed by the delegate [w/ K delegate kernels]" line."""

    delegate: str
    complete: bool
    kernels: int | None = None


@dataclass(frozen=True)
class BenchmarkModelResult:
    """Everything a ``benchmark_model`` run printed, in microseconds unless the name says otherwise.

    ``avg_us`` is always set. ``timing_source`` says where it came from: ``summary`` (the
    "Inference timings in us" line or its old "Average inference timings" form), ``stats`` (only
    the ``count=`` line survived) or ``op_profile`` (only the profiler's "Timings" line survived).
    """

    avg_us: float
    timing_source: str
    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    std_us: float | None = None
    min_us: float | None = None
    max_us: float | None = None
    count: int | None = None
    median_us: float | None = None
    p5_us: float | None = None
    p95_us: float | None = None
    warmup: TimingStats | None = None
    inference: TimingStats | None = None
    init_profile: OpProfile | None = None
    op_profile: OpProfile | None = None
    delegate_nodes: tuple[DelegateNodes, ...] = ()
    delegate_applied: tuple[DelegateApplied, ...] = ()
    delegates_created: tuple[str, ...] = ()
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    memory_kind: str | None = None  # "peak" (old tools) or "delta" (newer tools)
    model_size_mb: float | None = None
    session_init_ms: float | None = None
    tf_version: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def param(self, name: str) -> str | None:
        """A header parameter by name, ignoring case and spacing ("Use gpu" == "use GPU")."""
        wanted = _norm_key(name)
        for key, value in self.params.items():
            if _norm_key(key) == wanted:
                return value
        return None

    @property
    def fully_delegated(self) -> bool | None:
        """True/False when the tool said so (or every node was replaced), None when unknown."""
        if self.delegate_applied:
            return all(d.complete for d in self.delegate_applied)
        if self.delegate_nodes:
            return all(d.replaced == d.total for d in self.delegate_nodes)
        return None


def _norm_key(key: str) -> str:
    return " ".join(key.lower().split())


_NUM_OR_NAN = rf"(?:{NUM}|-?nan|-?inf)"  # "Warmup (avg): nan" after zero warm-up runs
_INFERENCE_TIMINGS_RE = re.compile(
    rf"Inference timings in us: Init: ({NUM}), First inference: ({NUM}), "
    rf"Warmup \(avg\): ({_NUM_OR_NAN}), Inference \(avg\): ({NUM})"
)
_OLD_AVERAGE_RE = re.compile(
    rf"Average inference timings in us: Warmup: ({NUM}), Init: ({NUM}), Inference: ({NUM})"
)
_MEMORY_RE = re.compile(
    rf"(Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
    rf"init=({NUM}) overall=({NUM})"
)
_REPLACING_RE = re.compile(
    r"Replacing\s+(\d+)\s+out of\s+(\d+)\s+node\(s\) with delegate \((.+?)\) node, yielding\s+(\d+)"
    r"\s+partitions(?: for (?:subgraph (\d+)|the whole graph))?"
)
_APPLIED_RE = re.compile(
    r"(?:Explicitly )?[Aa]pplied (\S+) delegate, and the model graph will be (completely|partially)"
    r" executed (?:by|w/) the delegate(?: w/ (\d+) delegate kernels)?"
)
_CREATED_RE = re.compile(
    r"^(?:Created TensorFlow Lite (?:(\S+) delegate for \S+|delegate for (\S+?))\.|(\S+) delegate created\.)"
)
_PARAM_RE = re.compile(r"^([#A-Za-z][^\[\]]*?)\s*:\s*\[(.*)\]$")
_TF_VERSION_RE = re.compile(r"^Tensorflow Version\s*:\s*(\S+)")
_TABLE_TITLE_RE = re.compile(r"^=+ (.+?) =+$")
_FAILED_RE = re.compile(r"\bBenchmarking failed\b")


class _ProfileBuilder:
    """Accumulates one op-profiling section while lines stream past."""

    def __init__(self, section: str) -> None:
        self.section = section
        self.tables: dict[str, list[Any]] = {"run_order": [], "top_by_time": [], "by_node_type": []}
        self.table: str | None = None
        self.header: list[str] | None = None
        self.nodes_executed: int | None = None
        self.nodes_observed: int | None = None
        self.timings: TimingStats | None = None

    def title(self, title: str) -> None:
        key = title.strip().lower()
        self.table = {"run order": "run_order", "top by computation time": "top_by_time",
                      "summary by node type": "by_node_type"}.get(key, f"other:{key}")
        self.header = None

    def row(self, text: str) -> None:
        cells = [c.strip() for c in text.split("\t")]
        if cells and cells[0] == "":
            cells = cells[1:]
        if all(c.startswith("[") and c.endswith("]") for c in cells):
            self.header = [_norm_col(c[1:-1]) for c in cells]
            return
        if self.table is None or self.header is None or self.table.startswith("other:"):
            return
        if len(cells) > len(self.header):  # a tab inside the name: glue the tail back together
            cells = [*cells[: len(self.header) - 1], "\t".join(cells[len(self.header) - 1:])]
        values = dict(zip(self.header, cells, strict=False))  # short rows leave columns out
        if self.table == "by_node_type":
            self.tables[self.table].append(NodeTypeRow(
                node_type=values["node type"], count=int(values["count"]),
                avg_ms=_pct(values["avg ms"]), avg_percent=_pct(values["avg%"]),
                cdf_percent=_pct(values["cdf%"]), mem_kb=_pct(values["mem kb"]),
                times_called=int(values["times called"]),
            ))
        else:
            self.tables[self.table].append(OpProfileRow(
                node_type=values["node type"], first_ms=_pct(values["first"]),
                avg_ms=_pct(values["avg ms"]), percent=_pct(values["%"]),
                cdf_percent=_pct(values["cdf%"]), mem_kb=_pct(values["mem kb"]),
                times_called=int(values["times called"]), name=values.get("name", ""),
                start_ms=_pct(values["start"]) if "start" in values else None,
            ))

    def build(self) -> OpProfile:
        return OpProfile(
            section=self.section, run_order=tuple(self.tables["run_order"]),
            top_by_time=tuple(self.tables["top_by_time"]),
            by_node_type=tuple(self.tables["by_node_type"]),
            nodes_executed=self.nodes_executed, nodes_observed=self.nodes_observed,
            timings=self.timings,
        )


def _norm_col(name: str) -> str:
    name = " ".join(name.lower().split())
    return {"cdf %": "cdf%", "avg %": "avg%"}.get(name, name)


def _pct(text: str) -> float:
    return float(text.rstrip("%"))


def parse_benchmark_model(text: str | bytes, *, source: str = "benchmark_model") -> BenchmarkModelResult:
    """Parse the output (stdout and stderr together) of one TFLite ``benchmark_model`` run.

    ``source`` names where the text came from (a file, a device) in error messages.
    Raises :class:`HwnasError` when the run failed or printed no timings.
    """
    lines = split_lines(text)
    params: dict[str, str] = {}
    warnings: list[str] = []
    errors: list[str] = []
    failed = False
    tf_version: str | None = None
    phase = 0  # how many "Running benchmark for at least" lines were seen
    warmup: TimingStats | None = None
    inference: TimingStats | None = None
    summary: dict[str, float] = {}
    memory: tuple[str, float, float] | None = None
    model_size_mb: float | None = None
    session_init_ms: float | None = None
    delegate_nodes: list[DelegateNodes] = []
    delegate_applied: list[DelegateApplied] = []
    created: list[str] = []
    profiles: dict[str, OpProfile] = {}
    builder: _ProfileBuilder | None = None

    def close_builder() -> None:
        nonlocal builder
        if builder is not None:
            profiles[builder.section] = builder.build()
            builder = None

    for line in lines:
        t = line.text
        s = t.strip()
        if not s:
            if builder is not None:
                builder.table, builder.header = None, None
            continue
        if line.level in ("ERROR", "FATAL") or (line.level is None and ERRORISH_RE.search(s)
                                               and not t.startswith("\t")):
            errors.append(line.display)
        if line.level == "WARNING" or s.startswith("Duplicate flags"):
            warnings.append(s)
        if _FAILED_RE.search(s):
            failed = True
            continue
        # --- op profiling ---------------------------------------------------------------
        if s.startswith("Profiling Info for Benchmark Initialization"):
            close_builder()
            builder = _ProfileBuilder("init")
            continue
        if s.startswith("Operator-wise Profiling Info for Regular Benchmark Runs"):
            close_builder()
            builder = _ProfileBuilder("run")
            continue
        m = _TABLE_TITLE_RE.match(s)
        if m:
            if builder is None:  # tables without a section title (old README output)
                builder = _ProfileBuilder("run")
            builder.title(m.group(1))
            continue
        if t.startswith("\t"):
            if builder is not None:
                builder.row(t)
            continue
        if s.startswith("Number of nodes executed:"):
            if builder is not None:
                builder.nodes_executed = int(s.split(":")[1])
            continue
        if s.startswith("Timings (microseconds):"):
            if builder is not None:
                builder.timings = TimingStats.from_line(s)
            continue
        if s.endswith("nodes observed"):
            if builder is not None:
                builder.nodes_observed = int(s.split()[0])
                close_builder()
            continue
        if s.startswith("Memory (bytes):"):
            continue
        # --- main output ----------------------------------------------------------------
        if s.startswith("count="):
            stats = TimingStats.from_line(s)
            if phase == 1:
                warmup = stats
            else:  # phase >= 2, or an author-trimmed tail without "Running benchmark" lines
                inference = stats
            continue
        if s.startswith("Running benchmark for at least"):
            phase += 1
            continue
        m = _INFERENCE_TIMINGS_RE.search(s)
        if m:
            summary = {"init": num(m.group(1)), "first": num(m.group(2)),
                       "avg": num(m.group(4))}
            if math.isfinite(num(m.group(3))):
                summary["warmup"] = num(m.group(3))
            continue
        m = _OLD_AVERAGE_RE.search(s)
        if m:
            summary = {"warmup": num(m.group(1)), "init": num(m.group(2)), "avg": num(m.group(3))}
            continue
        m = _MEMORY_RE.search(s)
        if m:
            kind = "peak" if m.group(1).startswith("Peak") else "delta"
            memory = (kind, num(m.group(2)), num(m.group(3)))
            continue
        m = _REPLACING_RE.search(s)
        if m:
            delegate_nodes.append(DelegateNodes(
                delegate=m.group(3), replaced=int(m.group(1)), total=int(m.group(2)),
                partitions=int(m.group(4)), subgraph=int(m.group(5)) if m.group(5) else None,
            ))
            continue
        m = _APPLIED_RE.search(s)
        if m:
            delegate_applied.append(DelegateApplied(
                delegate=m.group(1), complete=m.group(2) == "completely",
                kernels=int(m.group(3)) if m.group(3) else None,
            ))
            continue
        m = _CREATED_RE.match(s)
        if m:
            created.append(next(g for g in m.groups() if g))
            continue
        if s.startswith("The input model file size (MB):"):
            model_size_mb = num(s.rsplit(":", 1)[1])
            continue
        m = re.match(rf"Initialized session in ({NUM})\s*ms", s)
        if m:
            session_init_ms = num(m.group(1))
            continue
        m = _TF_VERSION_RE.match(s)
        if m:
            tf_version = m.group(1)
            continue
        m = _PARAM_RE.match(s)
        if m:
            params[m.group(1).strip()] = m.group(2)
            continue
    close_builder()

    if failed:
        _raise_tool_failure(source, "benchmark_model", errors, lines)
    op_profile = profiles.get("run")
    if "avg" in summary:
        avg, timing_source = summary["avg"], "summary"
    elif inference is not None and inference.avg_us is not None:
        avg, timing_source = inference.avg_us, "stats"
    elif op_profile is not None and op_profile.timings is not None and op_profile.timings.avg_us is not None:
        avg, timing_source = op_profile.timings.avg_us, "op_profile"
    else:
        hint = f" Errors: {quote(errors)}." if errors else ""
        raise HwnasError(
            f"{source}: benchmark_model printed no timing lines (expected 'Inference timings in us:' "
            f"or 'count=... avg=...').{hint} Output began: {quote(ln.display for ln in lines)}"
        )
    main = inference
    if timing_source == "op_profile":
        main = op_profile.timings if op_profile is not None else None
    first = summary.get("first")
    if first is None and warmup is not None:
        first = warmup.first_us if warmup.first_us is not None else warmup.curr_us
    warmup_avg = summary.get("warmup")
    if warmup_avg is None and warmup is not None:
        warmup_avg = warmup.avg_us
    return BenchmarkModelResult(
        avg_us=avg, timing_source=timing_source, init_us=summary.get("init"), first_us=first,
        warmup_avg_us=warmup_avg,
        std_us=main.std_us if main else None, min_us=main.min_us if main else None,
        max_us=main.max_us if main else None, count=main.count if main else None,
        median_us=main.median_us if main else None, p5_us=main.p5_us if main else None,
        p95_us=main.p95_us if main else None,
        warmup=warmup, inference=inference, init_profile=profiles.get("init"), op_profile=op_profile,
        delegate_nodes=tuple(delegate_nodes), delegate_applied=tuple(delegate_applied),
        delegates_created=tuple(dict.fromkeys(created)),
        memory_kind=memory[0] if memory else None, memory_init_mb=memory[1] if memory else None,
        memory_overall_mb=memory[2] if memory else None, model_size_mb=model_size_mb,
        session_init_ms=session_init_ms, tf_version=tf_version, params=params,
        warnings=tuple(warnings),
    )


def _raise_tool_failure(source: str, tool: str, errors: list[str], lines: list[Line]) -> None:
    joined = " ".join(errors)
    hint = ""
    if "NNAPI" in joined or "NN API" in joined:
        hint = (" The NNAPI delegate could not run this model on this device: measure it with "
                "another delegate (xnnpack / cpu) or another NNAPI accelerator.")
    elif "GPU" in joined:
        hint = " The GPU delegate could not run this model: try xnnpack / cpu."
    raise HwnasError(
        f"{source}: {tool} failed: {quote(errors, limit=6).rstrip('.')}.{hint} "
        f"Output began: {quote((ln.display for ln in lines), limit=3)}"
    )
