"""On-device ONNX Runtime runner: ``onnxruntime_perf_test`` run through a transport.

Command (``taskset`` only when the profile pins cores)::

    taskset MASK BIN -m times -r N -x T -e cpu|nnapi|xnnpack|qnn -I MODEL

Sustained latency (``MeasureConfig.sustained_s``) first runs ``BIN -m duration -t S ...`` on the
same model (the tool's warm-up is one inference, with no duration flag), then the timed command.

``-I`` feeds random inputs of the model's input shapes (no test-data folder needed). The tool
always runs exactly one warm-up inference before the timed runs and has no flag to change that,
so measurements from this runner record ``warmup = 1`` whatever was asked for.

:func:`parse_ort_perf_test` reads both wordings of the tool's summary ("Average inference time
cost" with and without "total").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hwnas.errors import HwnasError
from hwnas.runners.base import DeviceToolRunner, MeasureConfig, summary_from_tool
from hwnas.runners.stats import LatencySummary
from hwnas.runners.tool_output import ERRORISH_RE, NUM, num, quote, split_lines

ORT_WARMUP_RUNS = 1


def ort_perf_test_command(binary: str, model: str, *, threads: int, runs: int,
                          delegate: str) -> list[str]:
    """The ``onnxruntime_perf_test`` argv for one measurement (no taskset)."""
    return [binary, "-m", "times", "-r", str(runs), "-x", str(threads), "-e", delegate, "-I", model]


def ort_perf_test_sustain_command(binary: str, model: str, *, threads: int, seconds: float,
                                  delegate: str) -> list[str]:
    """The argv that keeps the model running for ``seconds`` (``-m duration -t``) right before a
    sustained measurement (the tool has no warm-up duration of its own)."""
    return [binary, "-m", "duration", "-t", f"{max(1, round(seconds))}", "-x", str(threads),
            "-e", delegate, "-I", model]


class OrtPerfTestRunner(DeviceToolRunner):
    """``onnx-adb``: ``onnxruntime_perf_test`` on an ADB device (or locally via ``local``)."""

    name = "onnx-adb"
    runtime = "onnx"
    tool = "onnxruntime_perf_test"

    def build_command(self, binary: str, remote_model: str, *, threads: int, delegate: str,
                      config: MeasureConfig) -> list[str]:
        return ort_perf_test_command(binary, remote_model, threads=threads, runs=config.runs,
                                     delegate=delegate)

    def sustain_command(self, binary: str, remote_model: str, *, threads: int, delegate: str,
                        config: MeasureConfig) -> list[str] | None:
        if not config.sustained_s:
            return None
        return ort_perf_test_sustain_command(binary, remote_model, threads=threads,
                                             seconds=config.sustained_s, delegate=delegate)

    def effective_warmup(self, config: MeasureConfig) -> int:
        return ORT_WARMUP_RUNS

    def parse(self, text: str, source: str) -> tuple[LatencySummary, dict[str, Any]]:
        r = parse_ort_perf_test(text, source=source)
        summary = summary_from_tool(r.runs, r.avg_ms, median=r.p50_ms, min_=r.min_ms,
                                    max_=r.max_ms, percentiles=r.percentiles_ms)
        extra: dict[str, Any] = {
            "first_ms": r.first_inference_ms,
            "init_ms": r.session_creation_s * 1000.0 if r.session_creation_s is not None else None,
            "peak_working_set_bytes": r.peak_working_set_bytes,
            "avg_cpu_percent": r.avg_cpu_percent,
            "provider_lines": list(r.provider_lines),
        }
        return summary, extra


# --------------------------------------------------------------------------------------------
# Output parser


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
    "avg_ms": re.compile(rf"^Average inference time cost(?: total)?:\s*({NUM})\s*ms"),
    "runs": re.compile(r"^Runs:\s*(\d+)"),
    "requests": re.compile(r"^Total inference requests:\s*(\d+)"),
    "first_inference_ms": re.compile(rf"^First inference time cost:\s*({NUM})\s*ms"),
    "session_creation_s": re.compile(rf"^Session creation time cost:\s*({NUM})\s*s"),
    "total_time_s": re.compile(rf"^Total inference time cost:\s*({NUM})\s*s"),
    "inferences_per_s": re.compile(rf"^Number of inferences per second:\s*({NUM})"),
    "avg_cpu_percent": re.compile(rf"^Avg CPU usage:\s*({NUM})"),
    "peak_working_set_bytes": re.compile(r"^Peak working set size:\s*(\d+)"),
    "intra_op_threads": re.compile(r"^Setting intra_op_num_threads to (\d+)"),
}
_ORT_LATENCY_RE = re.compile(rf"^(Min|Max|P50|P90|P95|P99|P999) Latency:\s*({NUM})\s*s")


def parse_ort_perf_test(text: str | bytes, *, source: str = "onnxruntime_perf_test") -> OrtPerfResult:
    """Parse ``onnxruntime_perf_test -m times`` output (both "Average inference time cost" forms).

    Raises :class:`HwnasError` quoting the first lines when no average was printed.
    """
    lines = split_lines(text)
    found: dict[str, float] = {}
    latencies: dict[str, float] = {}
    providers: list[str] = []
    errors: list[str] = []
    for line in lines:
        s = line.text.strip()
        if not s:
            continue
        if line.level in ("ERROR", "FATAL") or ERRORISH_RE.search(s):
            errors.append(line.display)
        if re.match(r"^(using|setting) ", s, re.IGNORECASE) and "intra_op_num_threads" not in s:
            providers.append(s)
        m = _ORT_LATENCY_RE.match(s)
        if m:
            latencies[m.group(1).lower()] = round(num(m.group(2)) * 1000.0, 6)
            continue
        for key, pattern in _ORT_PATTERNS.items():
            m = pattern.match(s)
            if m and key not in found:  # CPU usage and working set are printed twice
                found[key] = num(m.group(1))
                break
    if "avg_ms" not in found:
        detail = f" Errors: {quote(errors)}." if errors else ""
        raise HwnasError(
            f"{source}: onnxruntime_perf_test printed no 'Average inference time cost' line.{detail} "
            f"Output began: {quote(ln.display for ln in lines)}"
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
