"""Parsers for the text that on-device tools print: TFLite ``benchmark_model``,
``onnxruntime_perf_test``, ``getprop``, ``adb devices -l``, thermal zones, ``dumpsys thermalservice``
and cpufreq ``time_in_state``.

They work on the real output, as captured from devices (``tests/fixtures/real-outputs/`` holds
the captures and their sources): every ``benchmark_model`` generation (``INFO:``-prefixed and bare
lines, old ``Key : [value]`` headers, ``adb logcat`` prefixes, scientific notation, the old
"Average inference timings" summary, op-profiling tables in both column layouts), both
``onnxruntime_perf_test`` wordings, and ``getprop`` dumps saved as UTF-16LE with CRLF.

A tool run that failed (``Benchmarking failed.``, delegate errors, no timing lines at all) raises
:class:`~hwnas.errors.HwnasError` quoting the tool's own error lines and the first lines it printed,
so the user sees *why* without digging through logs.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hwnas.errors import HwnasError

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_KV_RE = re.compile(rf"([A-Za-z][A-Za-z0-9_]*)=({_NUM})")

# adb logcat prefixes: "-v time", "-v threadtime" and "-v brief".
_LOGCAT_PREFIXES = (
    re.compile(r"^\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+([VDIWEF])/[^(]*\(\s*\d+\):\s?"),
    re.compile(r"^\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+([VDIWEF])\s+[^:]*?:\s?"),
    re.compile(r"^([VDIWEF])/[^(]*\(\s*\d+\):\s?"),
)
_LOGCAT_LEVELS = {"V": "VERBOSE", "D": "DEBUG", "I": "INFO", "W": "WARNING", "E": "ERROR",
                  "F": "FATAL"}
_LEVEL_RE = re.compile(r"^(INFO|VERBOSE|WARNING|ERROR|DEBUG|FATAL): ?")


# --------------------------------------------------------------------------------------------
# Text handling


def decode_output(data: str | bytes) -> str:
    """Decode tool output robustly: UTF-8 / UTF-16 (with or without BOM), CRLF -> LF.

    Windows shells save ``adb shell getprop > file`` as UTF-16LE with a BOM and CRLF line ends;
    captures from other tools are UTF-8. Undecodable bytes become U+FFFD instead of failing.
    """
    if isinstance(data, str):
        text = data
    elif data.startswith(codecs.BOM_UTF8):
        text = data[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")
    elif len(data) >= 4 and data[1::2].count(0) > len(data) // 4:
        text = data.decode("utf-16-le", errors="replace")  # UTF-16LE without BOM
    elif len(data) >= 4 and data[0::2].count(0) > len(data) // 4:
        text = data.decode("utf-16-be", errors="replace")
    else:
        text = data.decode("utf-8", errors="replace")
    text = text.lstrip("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class _Line:
    level: str | None  # INFO / VERBOSE / WARNING / ERROR ... or None for bare lines
    text: str  # the line without logcat and level prefixes; leading tabs kept (tables)

    @property
    def display(self) -> str:
        return f"{self.level}: {self.text.strip()}" if self.level else self.text.strip()


def _split_lines(text: str | bytes) -> list[_Line]:
    lines: list[_Line] = []
    for raw in decode_output(text).split("\n"):
        raw = raw.rstrip()
        level: str | None = None
        for prefix in _LOGCAT_PREFIXES:
            m = prefix.match(raw)
            if m:
                level = _LOGCAT_LEVELS[m.group(1)]
                raw = raw[m.end():]
                break
        m = _LEVEL_RE.match(raw)
        if m:
            level = m.group(1)
            raw = raw[m.end():]
        lines.append(_Line(level, raw))
    return lines


def _quote(lines: Iterable[str], limit: int = 5, width: int = 200) -> str:
    picked = [ln.strip()[:width] for ln in lines if ln.strip()][:limit]
    return " | ".join(picked) if picked else "(no output)"


def _num(text: str) -> float:
    return float(text)


# --------------------------------------------------------------------------------------------
# TFLite benchmark_model


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
        kv = {k: _num(v) for k, v in _KV_RE.findall(text)}
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


_NUM_OR_NAN = rf"(?:{_NUM}|-?nan|-?inf)"  # "Warmup (avg): nan" after zero warm-up runs
_INFERENCE_TIMINGS_RE = re.compile(
    rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
    rf"Warmup \(avg\): ({_NUM_OR_NAN}), Inference \(avg\): ({_NUM})"
)
_OLD_AVERAGE_RE = re.compile(
    rf"Average inference timings in us: Warmup: ({_NUM}), Init: ({_NUM}), Inference: ({_NUM})"
)
_MEMORY_RE = re.compile(
    rf"(Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
    rf"init=({_NUM}) overall=({_NUM})"
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
_ERRORISH_RE = re.compile(r"(?i)\b(failed|error|not found|cannot|could not|unable)\b")


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
    lines = _split_lines(text)
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
        if line.level in ("ERROR", "FATAL") or (line.level is None and _ERRORISH_RE.search(s)
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
            summary = {"init": _num(m.group(1)), "first": _num(m.group(2)),
                       "avg": _num(m.group(4))}
            if math.isfinite(_num(m.group(3))):
                summary["warmup"] = _num(m.group(3))
            continue
        m = _OLD_AVERAGE_RE.search(s)
        if m:
            summary = {"warmup": _num(m.group(1)), "init": _num(m.group(2)), "avg": _num(m.group(3))}
            continue
        m = _MEMORY_RE.search(s)
        if m:
            kind = "peak" if m.group(1).startswith("Peak") else "delta"
            memory = (kind, _num(m.group(2)), _num(m.group(3)))
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
            model_size_mb = _num(s.rsplit(":", 1)[1])
            continue
        m = re.match(rf"Initialized session in ({_NUM})\s*ms", s)
        if m:
            session_init_ms = _num(m.group(1))
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
        hint = f" Errors: {_quote(errors)}." if errors else ""
        raise HwnasError(
            f"{source}: benchmark_model printed no timing lines (expected 'Inference timings in us:' "
            f"or 'count=... avg=...').{hint} Output began: {_quote(ln.display for ln in lines)}"
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


def _raise_tool_failure(source: str, tool: str, errors: list[str], lines: list[_Line]) -> None:
    joined = " ".join(errors)
    hint = ""
    if "NNAPI" in joined or "NN API" in joined:
        hint = (" The NNAPI delegate could not run this model on this device: measure it with "
                "another delegate (xnnpack / cpu) or another NNAPI accelerator.")
    elif "GPU" in joined:
        hint = " The GPU delegate could not run this model: try xnnpack / cpu."
    raise HwnasError(
        f"{source}: {tool} failed: {_quote(errors, limit=6).rstrip('.')}.{hint} "
        f"Output began: {_quote((ln.display for ln in lines), limit=3)}"
    )


# --------------------------------------------------------------------------------------------
# onnxruntime_perf_test


@dataclass(frozen=True)
class OrtPerfResult:
    """What ``onnxruntime_perf_test -m times`` printed, converted to milliseconds.

    The tool prints the average in ms but min / max / percentiles in seconds; all fields here are
    ms (``session_creation_s`` and ``total_time_s`` keep the tool's seconds).
    """

    avg_ms: float
    runs: int | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    first_inference_ms: float | None = None
    session_creation_s: float | None = None
    total_time_s: float | None = None
    inferences_per_s: float | None = None
    avg_cpu_percent: float | None = None
    peak_working_set_bytes: int | None = None
    intra_op_threads: int | None = None
    provider_lines: tuple[str, ...] = ()

    @property
    def percentiles_ms(self) -> dict[str, float]:
        """The percentiles the tool printed, keyed ``p50`` ... ``p999``."""
        out = {"p50": self.p50_ms, "p90": self.p90_ms, "p95": self.p95_ms, "p99": self.p99_ms,
               "p999": self.p999_ms}
        return {k: v for k, v in out.items() if v is not None}


_ORT_PATTERNS: dict[str, re.Pattern[str]] = {
    "avg_ms": re.compile(rf"^Average inference time cost(?: total)?:\s*({_NUM})\s*ms"),
    "runs": re.compile(r"^Runs:\s*(\d+)"),
    "requests": re.compile(r"^Total inference requests:\s*(\d+)"),
    "first_inference_ms": re.compile(rf"^First inference time cost:\s*({_NUM})\s*ms"),
    "session_creation_s": re.compile(rf"^Session creation time cost:\s*({_NUM})\s*s"),
    "total_time_s": re.compile(rf"^Total inference time cost:\s*({_NUM})\s*s"),
    "inferences_per_s": re.compile(rf"^Number of inferences per second:\s*({_NUM})"),
    "avg_cpu_percent": re.compile(rf"^Avg CPU usage:\s*({_NUM})"),
    "peak_working_set_bytes": re.compile(r"^Peak working set size:\s*(\d+)"),
    "intra_op_threads": re.compile(r"^Setting intra_op_num_threads to (\d+)"),
}
_ORT_LATENCY_RE = re.compile(rf"^(Min|Max|P50|P90|P95|P99|P999) Latency:\s*({_NUM})\s*s")


def parse_ort_perf_test(text: str | bytes, *, source: str = "onnxruntime_perf_test") -> OrtPerfResult:
    """Parse ``onnxruntime_perf_test -m times`` output (both "Average inference time cost" forms).

    Raises :class:`HwnasError` quoting the first lines when no average was printed.
    """
    lines = _split_lines(text)
    found: dict[str, float] = {}
    latencies: dict[str, float] = {}
    providers: list[str] = []
    errors: list[str] = []
    for line in lines:
        s = line.text.strip()
        if not s:
            continue
        if line.level in ("ERROR", "FATAL") or _ERRORISH_RE.search(s):
            errors.append(line.display)
        if re.match(r"^(using|setting) ", s, re.IGNORECASE) and "intra_op_num_threads" not in s:
            providers.append(s)
        m = _ORT_LATENCY_RE.match(s)
        if m:
            latencies[m.group(1).lower()] = round(_num(m.group(2)) * 1000.0, 6)
            continue
        for key, pattern in _ORT_PATTERNS.items():
            m = pattern.match(s)
            if m and key not in found:  # CPU usage and working set are printed twice
                found[key] = _num(m.group(1))
                break
    if "avg_ms" not in found:
        detail = f" Errors: {_quote(errors)}." if errors else ""
        raise HwnasError(
            f"{source}: onnxruntime_perf_test printed no 'Average inference time cost' line.{detail} "
            f"Output began: {_quote(ln.display for ln in lines)}"
        )
    runs = found.get("runs", found.get("requests"))

    def opt_int(key: str) -> int | None:
        return int(found[key]) if key in found else None

    return OrtPerfResult(
        avg_ms=found["avg_ms"], runs=int(runs) if runs is not None else None,
        min_ms=latencies.get("min"), max_ms=latencies.get("max"), p50_ms=latencies.get("p50"),
        p90_ms=latencies.get("p90"), p95_ms=latencies.get("p95"), p99_ms=latencies.get("p99"),
        p999_ms=latencies.get("p999"), first_inference_ms=found.get("first_inference_ms"),
        session_creation_s=found.get("session_creation_s"), total_time_s=found.get("total_time_s"),
        inferences_per_s=found.get("inferences_per_s"), avg_cpu_percent=found.get("avg_cpu_percent"),
        peak_working_set_bytes=opt_int("peak_working_set_bytes"),
        intra_op_threads=opt_int("intra_op_threads"), provider_lines=tuple(providers),
    )


# --------------------------------------------------------------------------------------------
# getprop


def parse_getprop(text: str | bytes) -> dict[str, str]:
    """Parse ``adb shell getprop`` output (``[key]: [value]`` lines) into a dict.

    Handles UTF-16LE/CRLF files saved on Windows, empty values (``[]``) and values that span
    several lines (``persist.sys.boot.reason.history``), which keep their inner newlines.
    """
    props: dict[str, str] = {}
    key: str | None = None
    parts: list[str] = []

    def flush() -> None:
        if key is not None:
            value = "\n".join(parts)
            props[key] = value[:-1] if value.endswith("]") else value

    start = re.compile(r"^\[([^\]]+)\]: \[(.*)$")
    for raw in decode_output(text).split("\n"):
        m = start.match(raw)
        if m:
            flush()
            key, parts = m.group(1), [m.group(2)]
        elif key is not None and raw:
            parts.append(raw)
    flush()
    return props


@dataclass(frozen=True)
class DeviceInfo:
    """The few ``getprop`` values hwnas checks a device profile against."""

    model: str | None
    manufacturer: str | None
    soc_model: str | None  # ro.soc.model, Android 12+ only
    soc_manufacturer: str | None
    board_platform: str | None  # Qualcomm code name: taro, kona, lito, pineapple, sun ...
    hardware: str | None
    abi: str | None
    android_release: str | None
    sdk: int | None
    serial: str | None


def device_info_from_getprop(props: Mapping[str, str]) -> DeviceInfo:
    """Pick model, SoC, ABI and Android version out of a ``getprop`` dict (missing keys -> None)."""

    def get(*keys: str) -> str | None:
        for k in keys:
            if props.get(k):
                return props[k]
        return None

    sdk = get("ro.build.version.sdk")
    return DeviceInfo(
        model=get("ro.product.model", "ro.product.vendor.model"),
        manufacturer=get("ro.product.manufacturer", "ro.product.vendor.manufacturer"),
        soc_model=get("ro.soc.model"), soc_manufacturer=get("ro.soc.manufacturer"),
        board_platform=get("ro.board.platform"), hardware=get("ro.hardware"),
        abi=get("ro.product.cpu.abi"), android_release=get("ro.build.version.release"),
        sdk=int(sdk) if sdk and sdk.isdigit() else None, serial=get("ro.serialno"),
    )


# --------------------------------------------------------------------------------------------
# adb client output


@dataclass(frozen=True)
class AdbDevice:
    """One line of ``adb devices [-l]``."""

    serial: str
    state: str
    details: Mapping[str, str] = field(default_factory=dict)  # usb, product, model, device, transport_id

    @property
    def model(self) -> str | None:
        return self.details.get("model")

    @property
    def ready(self) -> bool:
        """True when the device accepts shell commands (state ``device``)."""
        return self.state == "device"


def parse_adb_devices(text: str | bytes) -> list[AdbDevice]:
    """Parse ``adb devices`` / ``adb devices -l`` (tab or space separated) into devices."""
    devices: list[AdbDevice] = []
    for raw in decode_output(text).split("\n"):
        s = raw.strip()
        if not s or s.startswith(("List of devices", "*")) or s.startswith("adb "):
            continue
        m = re.match(r"^(\S+)\s+(no permissions.*?(?=\s+\w+:|$)|\S+)(.*)$", s)
        if not m:
            continue
        details = dict(kv.split(":", 1) for kv in m.group(3).split() if ":" in kv)
        devices.append(AdbDevice(serial=m.group(1), state=m.group(2), details=details))
    return devices


def adb_error_kind(text: str | bytes) -> str | None:
    """Classify an adb client error message: ``unauthorized``, ``offline``, ``not-found``,
    ``no-device``, ``more-than-one``, ``connection-refused`` (None if not an adb error)."""
    s = decode_output(text).lower()
    checks = (
        ("unauthorized", "unauthorized"),
        ("offline", "device offline"),
        ("more-than-one", "more than one device"),
        ("no-device", "no devices/emulators found"),
        ("not-found", "not found"),
        ("connection-refused", "connection refused"),
    )
    for kind, needle in checks:
        if needle in s and ("error" in s or "adb:" in s or "failed" in s):
            return kind
    return None


# --------------------------------------------------------------------------------------------
# Thermal


def parse_thermal_zone_temp(text: str | bytes, *, source: str = "thermal zone") -> float:
    """Degrees Celsius from a ``/sys/class/thermal/thermal_zone*/temp`` read.

    The kernel reports millidegrees (``45200``); a few vendor zones report whole degrees (``45``),
    so values with magnitude below 1000 are taken as degrees.
    """
    s = decode_output(text).strip()
    if not re.fullmatch(r"-?\d+(\.\d+)?", s):
        raise HwnasError(f"{source}: expected a temperature in millidegrees C, got {s[:80]!r}")
    value = float(s)
    return value / 1000.0 if abs(value) >= 1000 else value


TEMPERATURE_TYPES: Mapping[int, str] = {
    -1: "UNKNOWN", 0: "CPU", 1: "GPU", 2: "BATTERY", 3: "SKIN", 4: "USB_PORT",
    5: "POWER_AMPLIFIER", 6: "BCL_VOLTAGE", 7: "BCL_CURRENT", 8: "BCL_PERCENTAGE", 9: "NPU",
    10: "TPU", 11: "DISPLAY", 12: "MODEM", 13: "SOC", 14: "WIFI", 15: "CAMERA", 16: "FLASHLIGHT",
    17: "SPEAKER", 18: "AMBIENT", 19: "POGO",
}
"""android.os.Temperature TYPE_* constants. BCL_* "temperatures" are battery volts/amps/%."""


@dataclass(frozen=True)
class TemperatureReading:
    """One ``Temperature{mValue=..., mType=..., mName=..., mStatus=...}`` record."""

    name: str
    type: int
    value: float
    status: int

    @property
    def type_name(self) -> str:
        return TEMPERATURE_TYPES.get(self.type, f"TYPE_{self.type}")

    @property
    def is_temperature(self) -> bool:
        """False for the battery voltage / current / percentage channels."""
        return self.type not in (6, 7, 8)


@dataclass(frozen=True)
class ThermalServiceDump:
    """``dumpsys thermalservice``: throttling status and both temperature lists."""

    status: int | None
    cached: tuple[TemperatureReading, ...]
    current: tuple[TemperatureReading, ...]

    @property
    def readings(self) -> tuple[TemperatureReading, ...]:
        """The HAL's current values when present, else the cached ones."""
        return self.current or self.cached

    def temperature(self, sensor: str = "CPU") -> float | None:
        """Hottest reading of a type (``"CPU"``, ``"SKIN"``...) or the value of a named sensor."""
        wanted = sensor.upper()
        by_type = [r.value for r in self.readings if r.type_name == wanted and r.is_temperature]
        if by_type:
            return max(by_type)
        for r in self.readings:
            if r.name.upper() == wanted:
                return r.value
        return None


_TEMPERATURE_RE = re.compile(
    rf"Temperature\{{mValue=({_NUM}|NaN), mType=(-?\d+), mName=([^,]*), mStatus=(-?\d+)\}}"
)


def parse_dumpsys_thermalservice(text: str | bytes) -> ThermalServiceDump:
    """Parse ``adb shell dumpsys thermalservice`` (Android 10+ thermal service)."""
    status: int | None = None
    cached: list[TemperatureReading] = []
    current: list[TemperatureReading] = []
    target: list[TemperatureReading] | None = None
    for raw in decode_output(text).split("\n"):
        s = raw.strip()
        if s.startswith("Thermal Status:"):
            status = int(s.split(":", 1)[1])
        elif s.startswith("Cached temperatures"):
            target = cached
        elif s.startswith("Current temperatures from HAL"):
            target = current
        elif raw and not raw[0].isspace():
            target = None  # any other unindented heading ends a temperature list
        m = _TEMPERATURE_RE.search(s)
        if m and target is not None and m.group(1) != "NaN":
            target.append(TemperatureReading(
                name=m.group(3), type=int(m.group(2)), value=float(m.group(1)),
                status=int(m.group(4)),
            ))
    return ThermalServiceDump(status=status, cached=tuple(cached), current=tuple(current))


# --------------------------------------------------------------------------------------------
# cpufreq


def parse_time_in_state(text: str | bytes) -> dict[str, tuple[tuple[int, int], ...]]:
    """Parse cpufreq ``time_in_state`` dumps: ``{"cpu0": ((khz, time), ...), ...}``.

    Accepts one file (key ``""``) or several concatenated under ``cpuN`` / ``policyN`` headers;
    the policy with the highest top frequency holds the prime/big cores.
    """
    tables: dict[str, list[tuple[int, int]]] = {}
    current = ""
    for raw in decode_output(text).split("\n"):
        s = raw.strip()
        if not s:
            continue
        m = re.fullmatch(r"(\d+)\s+(\d+)", s)
        if m:
            tables.setdefault(current, []).append((int(m.group(1)), int(m.group(2))))
        else:
            current = s.rstrip(":").rsplit("/", 1)[-1]
    return {k: tuple(v) for k, v in tables.items()}
