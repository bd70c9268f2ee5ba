"""On-device ONNX Runtime runner: ``onnxruntime_perf_test`` run through a transport.

Command (``taskset`` only when the profile pins cores)::

    taskset MASK BIN -m times -r N -x T -e cpu|nnapi|xnnpack|qnn -I MODEL

``-I`` feeds random inputs of the model's input shapes (no test-data folder needed). The tool
always runs exactly one warm-up inference before the timed runs and has no flag to change that,
so measurements from this runner record ``warmup = 1`` whatever was asked for.
"""

from __future__ import annotations

from typing import Any

from hwnas.runners.base import DeviceToolRunner, MeasureConfig, summary_from_tool
from hwnas.runners.parsers import parse_ort_perf_test
from hwnas.runners.stats import LatencySummary

ORT_WARMUP_RUNS = 1


def ort_perf_test_command(binary: str, model: str, *, threads: int, runs: int,
                          delegate: str) -> list[str]:
    """The ``onnxruntime_perf_test`` argv for one measurement (no taskset)."""
    return [binary, "-m", "times", "-r", str(runs), "-x", str(threads), "-e", delegate, "-I", model]


class OrtPerfTestRunner(DeviceToolRunner):
    """``onnx-adb``: ``onnxruntime_perf_test`` on an ADB device (or locally via ``local``)."""

    name = "onnx-adb"
    runtime = "onnx"
    model_suffix = ".onnx"
    tool = "onnxruntime_perf_test"

    def build_command(self, binary: str, remote_model: str, *, threads: int, delegate: str,
                      config: MeasureConfig) -> list[str]:
        return ort_perf_test_command(binary, remote_model, threads=threads, runs=config.runs,
                                     delegate=delegate)

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
