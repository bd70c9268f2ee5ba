"""On-device TFLite runner: TFLite/LiteRT ``benchmark_model`` run through a transport.

Command (``taskset`` only when the profile pins cores)::

    taskset MASK BIN --graph=MODEL --num_threads=T --warmup_runs=W --num_runs=N
        --min_secs=0 --warmup_min_secs=0 --use_xnnpack=true|false [--use_gpu=true]
        [--use_nnapi=true] [--enable_op_profiling=true]

``--min_secs=0 --warmup_min_secs=0`` make the run counts exact; by default the tool keeps running
until one second has passed, so the count would depend on the model's speed.
"""

from __future__ import annotations

from typing import Any

from hwnas.runners.base import DeviceToolRunner, MeasureConfig, ms, summary_from_tool
from hwnas.runners.parsers import parse_benchmark_model
from hwnas.runners.stats import LatencySummary

DELEGATE_FLAGS: dict[str, tuple[str, ...]] = {
    "cpu": ("--use_xnnpack=false",),  # the reference CPU kernels (recent tools default to XNNPACK)
    "xnnpack": ("--use_xnnpack=true",),
    "gpu": ("--use_gpu=true",),
    "nnapi": ("--use_nnapi=true",),
}


def benchmark_model_command(binary: str, model: str, *, threads: int, warmup: int, runs: int,
                            delegate: str, op_profiling: bool = False) -> list[str]:
    """The ``benchmark_model`` argv for one measurement (no taskset)."""
    argv = [binary, f"--graph={model}", f"--num_threads={threads}", f"--warmup_runs={warmup}",
            f"--num_runs={runs}", "--min_secs=0", "--warmup_min_secs=0", *DELEGATE_FLAGS[delegate]]
    if op_profiling:
        argv.append("--enable_op_profiling=true")
    return argv


class BenchmarkModelRunner(DeviceToolRunner):
    """``tflite-adb``: TFLite ``benchmark_model`` on an ADB device (or locally via ``local``)."""

    name = "tflite-adb"
    runtime = "tflite"
    model_suffix = ".tflite"
    tool = "benchmark_model"

    def build_command(self, binary: str, remote_model: str, *, threads: int, delegate: str,
                      config: MeasureConfig) -> list[str]:
        return benchmark_model_command(binary, remote_model, threads=threads, warmup=config.warmup,
                                       runs=config.runs, delegate=delegate,
                                       op_profiling=config.op_profiling)

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
