#!/usr/bin/env python3
"""TEST TOOLING, NOT A BENCHMARK: a host stand-in for ONNX Runtime's ``onnxruntime_perf_test``.

hwnas's ``onnx-adb`` runner drives the real ``onnxruntime_perf_test`` binary on a phone. To test
that path without a phone, this script accepts the real tool's short options
(``-m times|duration -r N -t SECS -x T -y T -e cpu|nnapi|... -I -s -S SEED -o LEVEL -p FILE ...``
and the model path), runs the model with the onnxruntime Python package, and prints the newer
output format to stdout::

    Setting intra_op_num_threads to 2
    Session creation time cost: 0.0123 s
    First inference time cost: 3 ms
    Total inference time cost: 0.0412 s
    Total inference requests: 20
    Average inference time cost total: 2.060000 ms
    ...
    Runs:20
    Min Latency: 0.0019 s  (and Max, P50, P90, P95, P99, P999)

Like the real tool it makes one warm-up inference before the timed ones, prints the average in
ms and the latencies in seconds, and exits non-zero with a message on stderr when the model file
is missing or an execution provider is not in this build (the Python package has the CPU
provider only, so ``-e nnapi`` fails here as it does in a desktop build). The timings are real
measurements of onnxruntime on this host, nothing is made up.

Usage: python tools/fake_onnxruntime_perf_test.py -m times -r 20 -x 2 -e cpu -I model.onnx
"""

from __future__ import annotations

import getopt
import math
import os
import resource
import sys
import time
from collections.abc import Sequence

SHORT_OPTS = "m:r:t:x:y:e:c:o:p:S:i:f:F:u:d:IsvZAMPqzDnlgh"
PROVIDERS = {"cpu": "CPUExecutionProvider", "xnnpack": "XnnpackExecutionProvider",
             "nnapi": "NnapiExecutionProvider", "qnn": "QNNExecutionProvider",
             "cuda": "CUDAExecutionProvider", "dnnl": "DnnlExecutionProvider"}
EXIT_FAILURE = 255  # the real tool's main() returns -1
USAGE = ("usage: fake_onnxruntime_perf_test [options...] model_path [result_file]\n"
         "  -m [test_mode]: 'duration' or 'times'. -r [repeated_times] -t [seconds_to_run]\n"
         "  -x [intra_op_num_threads] -y [inter_op_num_threads] -e [cpu|xnnpack|nnapi|...] -I")


def error(message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return EXIT_FAILURE


def latency_index(n: int, q: float) -> int:
    """The real tool's percentile: ``sorted[round(n * q)]`` clipped to the last sample."""
    return min(n - 1, round(n * q))


def main(argv: Sequence[str]) -> int:
    try:
        opts, args = getopt.getopt(list(argv), SHORT_OPTS)
    except getopt.GetoptError as exc:
        return error(f"{exc}\n{USAGE}")
    options = dict(opts)
    if "-h" in options or len(args) not in (1, 2):
        return error(USAGE)
    mode = options.get("-m", "duration")
    if mode not in ("duration", "times"):
        return error(f"unknown test mode {mode!r}: use 'duration' or 'times'\n{USAGE}")
    try:
        repeats = int(options.get("-r", "1000"))
        seconds = float(options.get("-t", "600"))
        intra = int(options.get("-x", "0"))
        inter = int(options.get("-y", "0"))
        seed = int(options.get("-S", "0"))
    except ValueError as exc:
        return error(f"invalid numeric option: {exc}\n{USAGE}")
    if mode == "times" and repeats < 1:
        return error(f"-r must be at least 1, got {repeats}\n{USAGE}")
    provider_name = options.get("-e", "cpu")
    model = args[0]

    import numpy as np
    import onnxruntime as ort

    provider = PROVIDERS.get(provider_name)
    if provider is None:
        return error(f"unknown execution provider {provider_name!r}\n{USAGE}")
    if provider not in ort.get_available_providers():
        return error(f"{provider_name.upper()} is not supported in this build.")
    if not os.path.isfile(model):
        return error(f"Load model from {model} failed: file does not exist")

    so = ort.SessionOptions()
    if intra > 0:
        so.intra_op_num_threads = intra
        print(f"Setting intra_op_num_threads to {intra}")
    if inter > 0:
        so.inter_op_num_threads = inter
        print(f"Setting inter_op_num_threads to {inter}")
    t0 = time.perf_counter()
    try:
        session = ort.InferenceSession(model, sess_options=so, providers=[provider])
    except Exception as exc:  # onnxruntime raises its own exception types
        return error(f"Load model from {model} failed: {exc}")
    print(f"Session creation time cost: {time.perf_counter() - t0:g} s")

    rng = np.random.default_rng(seed)
    dtypes = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
              "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}
    feeds = {}
    for inp in session.get_inputs():
        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in inp.shape)
        dtype = dtypes.get(inp.type)
        if dtype is None:
            return error(f"input {inp.name} has unsupported type {inp.type}")
        if np.issubdtype(dtype, np.floating):
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[inp.name] = rng.integers(0, 2, size=shape).astype(dtype)

    # warm up (one inference, as the real tool does)
    t0 = time.perf_counter()
    session.run(None, feeds)
    print(f"First inference time cost: {int((time.perf_counter() - t0) * 1000)} ms")

    cpu0 = os.times()
    wall0 = time.perf_counter()
    latencies: list[float] = []
    while (len(latencies) < repeats) if mode == "times" else (time.perf_counter() - wall0 < seconds):
        start = time.perf_counter()
        session.run(None, feeds)
        latencies.append(time.perf_counter() - start)
    wall = time.perf_counter() - wall0
    cpu1 = os.times()
    total = sum(latencies)
    n = len(latencies)
    cpu_used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    cpu_pct = round(100.0 * cpu_used / wall / (os.cpu_count() or 1)) if wall > 0 else 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"Total inference time cost: {total:g} s")
    print(f"Total inference requests: {n}")
    print(f"Average inference time cost total: {total / n * 1000:.6f} ms")
    print(f"Total inference run time: {wall:g} s")
    print(f"Number of inferences per second: {n / wall if wall > 0 else math.inf:g}")
    print(f"Avg CPU usage: {cpu_pct} %")
    print(f"Peak working set size: {peak} bytes")
    print(f"Avg CPU usage:{cpu_pct}")
    print(f"Peak working set size:{peak}")
    print(f"Runs:{n}")
    ordered = sorted(latencies)
    print(f"Min Latency: {ordered[0]:g} s")
    print(f"Max Latency: {ordered[-1]:g} s")
    for label, q in (("P50", 0.5), ("P90", 0.9), ("P95", 0.95), ("P99", 0.99), ("P999", 0.999)):
        print(f"{label} Latency: {ordered[latency_index(n, q)]:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
