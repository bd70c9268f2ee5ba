#!/usr/bin/env python3
"""TEST TOOLING, NOT A BENCHMARK: a host stand-in for TFLite's ``benchmark_model``.

hwnas's ``tflite-adb`` runner drives the real ``benchmark_model`` binary on a phone. To test that
path end to end without a phone (command line, transport, parsing), this script accepts the real
tool's ``--flag=value`` arguments, runs the ``.tflite`` file with the LiteRT Python interpreter
(``ai_edge_litert``), and prints its log in the real tool's modern ``INFO:`` format:

* parameter header (``INFO: STARTING!``, ``INFO: Num threads: [4]``, ...; flags given only),
* one ``count= first= curr= min= max= avg= std= p5= median= p95=`` line for the warm-up and one
  for the timed runs (microseconds, integers as the real tool prints them, avg with ``%g``),
* ``Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ..., Inference (avg): ...``,
* ``Memory footprint delta from the start of the tool (MB): init=... overall=...`` (ru_maxrss),
* ``--input_layer_value_files=NAME:FILE,...`` fills the named inputs from raw binary files and
  ``--output_filepath=FILE`` writes the raw bytes of every output tensor after the runs, in output
  order, as the real tool does (otherwise inputs are seeded random values);
* with ``--enable_op_profiling=true``: the op-profiling tables in the newer layout. The Python
  interpreter exposes no per-op timings, so the "Regular Benchmark Runs" tables hold one row for
  the whole graph (node type ``Invoke``), like a fully delegated graph; the initialisation table
  times ``AllocateTensors``.

Like the real tool it logs to stderr, loops "at least --num_runs iterations and at least
--min_secs seconds", warns about unknown flags (``WARNING: Unconsumed cmdline flags: ...``), and
exits 1 after ``ERROR: ...`` / ``ERROR: Benchmarking failed.`` when the graph is missing or a
delegate it cannot provide is asked for (``--use_gpu``, ``--use_nnapi``, external delegates).
The numbers are real timings of the Python interpreter on this host, nothing is made up; they
are *not* what the C++ tool would measure.

Usage: python tools/fake_benchmark_model.py --graph=model.tflite --num_threads=2 --num_runs=20
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

FLAGS: dict[str, tuple[type, Any, str]] = {
    # name: (type, default, header label printed by the real tool)
    "graph": (str, "", "Graph"),
    "num_threads": (int, -1, "Num threads"),
    "num_runs": (int, 50, "Min num runs"),
    "min_secs": (float, 1.0, "Min runs duration (seconds)"),
    "max_secs": (float, 150.0, "Max runs duration (seconds)"),
    "run_delay": (float, -1.0, "Inter-run delay (seconds)"),
    "warmup_runs": (int, 1, "Min warmup runs"),
    "warmup_min_secs": (float, 0.5, "Min warmup runs duration (seconds)"),
    "enable_op_profiling": (bool, False, "Enable op profiling"),
    "max_profiling_buffer_entries": (int, 1024, "Max initial profiling buffer entries"),
    "use_xnnpack": (bool, False, "Use xnnpack"),
    "use_gpu": (bool, False, "Use gpu"),
    "use_nnapi": (bool, False, "Use NNAPI"),
    "nnapi_accelerator_name": (str, "", "NNAPI accelerator name"),
    "nnapi_allow_fp16": (bool, False, "Allow fp16 in NNAPI"),
    "external_delegate_path": (str, "", "External delegate path"),
    "max_delegated_partitions": (int, 0, "Max number of delegated partitions"),
    "verbose": (bool, False, "Log parameter values verbosely"),
    "benchmark_name": (str, "", "Benchmark name"),
    "output_prefix": (str, "", "Output prefix"),
    "signature_to_run_for": (str, "", "Signature to run"),
    "report_peak_memory_footprint": (bool, False, "Report the peak memory footprint"),
    "input_layer_value_files": (str, "", "Input value files"),
    "output_filepath": (str, "", "File path to export outputs layer to"),
}


def log(level: str, message: str) -> None:
    print(f"{level}: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> int:
    log("ERROR", message)
    log("ERROR", "Benchmarking failed.")
    return 1


def parse_flags(argv: Sequence[str]) -> tuple[dict[str, Any], list[str], list[str]]:
    """``(values, flags given on the command line, unconsumed args)``; raises ValueError on bad values."""
    values = {name: default for name, (_, default, _) in FLAGS.items()}
    given: list[str] = []
    unconsumed: list[str] = []
    for arg in argv:
        if not arg.startswith("--"):
            unconsumed.append(arg)
            continue
        name, has_value, raw = arg[2:].partition("=")
        if name not in FLAGS:
            unconsumed.append(arg)
            continue
        typ = FLAGS[name][0]
        if typ is bool:
            text = raw.lower() if has_value else "true"
            if text not in ("true", "false", "1", "0"):
                raise ValueError(f"--{name}: expected true or false, got {raw!r}")
            values[name] = text in ("true", "1")
        else:
            values[name] = typ(raw)
        if name not in given:
            given.append(name)
    return values, given, unconsumed


def fmt(value: float) -> str:
    """C++ ``ostream << double`` with the default precision 6 (``%g``)."""
    return f"{value:g}"


def percentile(sorted_us: Sequence[int], q: float) -> int:
    return sorted_us[min(len(sorted_us) - 1, max(0, math.ceil(q / 100.0 * len(sorted_us)) - 1))]


def stats_line(samples_us: Sequence[int]) -> str:
    n = len(samples_us)
    avg = sum(samples_us) / n
    std = round(math.sqrt(max(0.0, sum(x * x for x in samples_us) / n - avg * avg)))
    s = sorted(samples_us)
    return (f"count={n} first={samples_us[0]} curr={samples_us[-1]} min={s[0]} max={s[-1]} "
            f"avg={fmt(avg)} std={std} p5={percentile(s, 5)} median={percentile(s, 50)} "
            f"p95={percentile(s, 95)}")


def run_loop(invoke: Callable[[], None], min_runs: int, min_secs: float, max_secs: float,
             run_delay: float) -> list[int]:
    """The real tool's loop: at least ``min_runs`` runs and ``min_secs`` seconds, at most ``max_secs``."""
    log("INFO", f"Running benchmark for at least {min_runs} iterations and at least {fmt(min_secs)} "
                f"seconds but terminate if exceeding {fmt(max_secs)} seconds.")
    samples: list[int] = []
    start = time.perf_counter()
    while (len(samples) < min_runs or time.perf_counter() - start < min_secs) and \
            time.perf_counter() - start <= max_secs:
        t0 = time.perf_counter_ns()
        invoke()
        samples.append((time.perf_counter_ns() - t0) // 1000)
        if run_delay > 0:
            time.sleep(run_delay)
    return samples


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"============================== {title} ==============================", file=sys.stderr)
    print("\t" + "\t".join(header), file=sys.stderr)
    for row in rows:
        print("\t" + "\t".join(row), file=sys.stderr)
    print("", file=sys.stderr)


def print_profile(node_type: str, name: str, samples_us: Sequence[int], nodes: int) -> None:
    """Op-profiling tables (newer layout: no [start] column) for one node."""
    avg_ms = sum(samples_us) / len(samples_us) / 1000.0
    first_ms = samples_us[0] / 1000.0
    header = [f"{'[node type]':>40}", f"{'[first]':>9}", f"{'[avg ms]':>9}", f"{'[%]':>8}",
              f"{'[cdf%]':>8}", f"{'[mem KB]':>10}", "[times called]", "[Name]"]
    row = [f"{node_type:>40}", f"{first_ms:9.3f}", f"{avg_ms:9.3f}", "100.000%", "100.000%",
           f"{0.0:10.3f}", f"{1:>9}", name]
    print_table("Run Order", header, [row])
    print_table("Top by Computation Time", header, [row])
    print(f"Number of nodes executed: {nodes}", file=sys.stderr)
    summary_header = [f"{'[Node type]':>40}", f"{'[count]':>9}", f"{'[avg ms]':>10}", f"{'[avg %]':>11}",
                      f"{'[cdf %]':>11}", f"{'[mem KB]':>10}", "[times called]"]
    print_table("Summary by node type", summary_header,
                [[f"{node_type:>40}", f"{1:>9}", f"{avg_ms:10.3f}", f"{'100.000%':>11}",
                  f"{'100.000%':>11}", f"{0.0:10.3f}", f"{1:>9}"]])
    n = len(samples_us)
    avg = sum(samples_us) / n
    if n == 1:
        print(f"Timings (microseconds): count=1 curr={samples_us[0]}", file=sys.stderr)
    else:
        std = round(math.sqrt(max(0.0, sum(x * x for x in samples_us) / n - avg * avg)))
        print(f"Timings (microseconds): count={n} first={samples_us[0]} curr={samples_us[-1]} "
              f"min={min(samples_us)} max={max(samples_us)} avg={fmt(avg)} std={std}", file=sys.stderr)
    print("Memory (bytes): count=0", file=sys.stderr)
    print(f"{nodes} nodes observed", file=sys.stderr)
    print("\n\n", file=sys.stderr)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main(argv: Sequence[str]) -> int:
    log("INFO", "STARTING!")
    try:
        flags, given, unconsumed = parse_flags(argv)
    except ValueError as exc:
        return fail(f"Invalid command line flag: {exc}")
    if unconsumed:
        log("WARNING", "Unconsumed cmdline flags: " + " ".join(unconsumed))
    try:
        from importlib.metadata import version

        import numpy as np
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        litert_version = version("ai-edge-litert")
    except ImportError as exc:
        return fail(f"fake_benchmark_model needs the ai-edge-litert package: {exc}")
    rss_start = max_rss_mb()  # after the Python imports, so the deltas are about the model
    log("INFO", f"Tensorflow Version : {litert_version}")
    log("INFO", f"Log parameter values verbosely: [{int(flags['verbose'])}]")
    for name in given:
        if name == "verbose":
            continue
        value = flags[name]
        shown = int(value) if isinstance(value, bool) else fmt(value) if isinstance(value, float) else value
        log("INFO", f"{FLAGS[name][2]}: [{shown}]")
        if name == "num_threads":
            log("INFO", f"#threads used for CPU inference: [{value}]")
    log("INFO", "fake_benchmark_model: hwnas test stand-in (LiteRT Python interpreter), "
                "not the real benchmark_model")

    graph = flags["graph"]
    if not graph:
        return fail("Please specify the name of your TF Lite input file with --graph")
    if not os.path.isfile(graph):
        log("ERROR", f"Could not open '{graph}'.")
        return fail(f"Failed to mmap model {graph}")
    for name, label in (("use_gpu", "GPU"), ("use_nnapi", "NNAPI")):
        if flags[name]:
            log("ERROR", f"{label} delegate is not available in fake_benchmark_model (host stand-in).")
            return fail(f"Failed to apply {label} delegate.")
    if flags["external_delegate_path"]:
        return fail("External delegates are not available in fake_benchmark_model.")

    threads = flags["num_threads"] if flags["num_threads"] > 0 else None
    explicit_no_xnnpack = "use_xnnpack" in given and not flags["use_xnnpack"]
    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if explicit_no_xnnpack else OpResolverType.AUTO
    init_start = time.perf_counter_ns()
    try:
        interpreter = Interpreter(model_path=graph, num_threads=threads,
                                  experimental_op_resolver_type=resolver)
    except (ValueError, RuntimeError) as exc:
        return fail(f"Failed to build the interpreter for {graph}: {exc}")
    log("INFO", f"Loaded model {graph}")
    log("INFO", "Initialized TensorFlow Lite runtime.")
    alloc_start = time.perf_counter_ns()
    try:
        interpreter.allocate_tensors()
    except RuntimeError as exc:
        return fail(f"Failed to allocate tensors!: {exc}")
    alloc_us = max(1, (time.perf_counter_ns() - alloc_start) // 1000)
    init_us = (time.perf_counter_ns() - init_start) // 1000

    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        shape = tuple(int(d) for d in detail["shape"])
        dtype = np.dtype(detail["dtype"])
        if np.issubdtype(dtype, np.floating):
            data = rng.standard_normal(shape).astype(dtype)
        else:
            data = rng.integers(0, 2, size=shape).astype(dtype)
        interpreter.set_tensor(detail["index"], data)
    by_name = {d["name"]: d for d in interpreter.get_input_details()}
    for item in filter(None, flags["input_layer_value_files"].split(",")):
        name, _, path = item.partition(":")
        if name not in by_name:
            return fail(f"Cannot find the input layer '{name}' for --input_layer_value_files")
        detail = by_name[name]
        try:
            raw = np.fromfile(path, dtype=detail["dtype"])
        except OSError as exc:
            return fail(f"Failed to read input value file {path}: {exc}")
        if raw.size != int(np.prod(detail["shape"])):
            return fail(f"The size of {path} does not match input layer '{name}'")
        interpreter.set_tensor(detail["index"], raw.reshape(detail["shape"]))

    log("INFO", f"The input model file size (MB): {fmt(os.path.getsize(graph) / 1e6)}")
    log("INFO", f"Initialized session in {fmt(init_us / 1000.0)}ms.")
    rss_init = max_rss_mb()

    warmup = run_loop(interpreter.invoke, flags["warmup_runs"], flags["warmup_min_secs"],
                      flags["max_secs"], flags["run_delay"])
    if warmup:
        log("INFO", stats_line(warmup))
    print("", file=sys.stderr)
    runs = run_loop(interpreter.invoke, flags["num_runs"], flags["min_secs"], flags["max_secs"],
                    flags["run_delay"])
    if not runs:
        return fail("No inference runs were made (check --num_runs and --max_secs).")
    log("INFO", stats_line(runs))
    print("", file=sys.stderr)
    first = warmup[0] if warmup else runs[0]
    warmup_avg = sum(warmup) / len(warmup) if warmup else float("nan")
    log("INFO", f"Inference timings in us: Init: {init_us}, First inference: {first}, "
                f"Warmup (avg): {fmt(warmup_avg)}, Inference (avg): {fmt(sum(runs) / len(runs))}")
    log("INFO", "Note: as the benchmark tool itself affects memory footprint, the following is only "
                "APPROXIMATE to the actual memory footprint of the model at runtime. Take the "
                "information at your discretion.")
    rss_end = max_rss_mb()
    log("INFO", f"Memory footprint delta from the start of the tool (MB): "
                f"init={fmt(rss_init - rss_start)} overall={fmt(rss_end - rss_start)}")
    if flags["output_filepath"]:
        with open(flags["output_filepath"], "wb") as fh:
            for detail in interpreter.get_output_details():
                fh.write(interpreter.get_tensor(detail["index"]).tobytes())
    if flags["enable_op_profiling"]:
        log("INFO", "Profiling Info for Benchmark Initialization:")
        print_profile("AllocateTensors", "AllocateTensors/0", [alloc_us], 1)
        nodes = len(interpreter._get_ops_details())
        log("INFO", "Operator-wise Profiling Info for Regular Benchmark Runs:")
        print_profile("Invoke", f"[whole graph]:{nodes}", runs, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
