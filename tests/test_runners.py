"""Runners: host in-process runners, device runners over a transport (canned real outputs and the
fake benchmark tools under tools/ run through LocalTransport), commands, registry, thermal reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from importlib import metadata
import time
from pathlib import Path

import pytest
import torch

from hwnas.devices.profiles import DeviceProfile, load_profile
from hwnas.devices.thermal import temperature_reader
from hwnas.devices.transport import LocalTransport, ShellResult
from hwnas.errors import HwnasError
from hwnas.runners.base import MeasureConfig
from hwnas.runners.benchmark_model import BenchmarkModelRunner, benchmark_model_command, parse_benchmark_model
from hwnas.runners.host import OnnxHostRunner, TfliteHostRunner
from hwnas.runners.ort_perf_test import OrtPerfTestRunner, ort_perf_test_command, parse_ort_perf_test
from hwnas.runners.registry import create_runner, default_runner_name, runner_class, runner_names

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "real-outputs"
FAKE_BENCHMARK_MODEL = REPO / "tools" / "fake_benchmark_model.py"
FAKE_ORT_PERF_TEST = REPO / "tools" / "fake_onnxruntime_perf_test.py"


# ---- tiny models -----------------------------------------------------------------------------


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny conv net as .tflite (litert-torch) and .onnx (torch.onnx.export)."""
    import litert_torch

    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = TinyNet().eval()
    sample = (torch.randn(1, 3, 8, 8),)
    tflite = folder / "tiny.tflite"
    litert_torch.convert(model.eval(), sample).export(str(tflite))
    onnx = folder / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is the fast one
        torch.onnx.export(model, sample, str(onnx), dynamo=False, input_names=["x"], output_names=["y"])
    assert tflite.stat().st_size > 0 and onnx.stat().st_size > 0
    return {"tflite": tflite, "onnx": onnx}


def wrapper(folder: Path, tool: Path) -> Path:
    """An executable that runs a Python tool with this interpreter (as a device binary would run)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / tool.stem
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{tool}" "$@"\n', encoding="utf-8")
    path.chmod(0o755)
    return path


def first_allowed_cpu_mask() -> str:
    return format(1 << min(os.sched_getaffinity(0)), "x")


@pytest.fixture
def local_device(tmp_path: Path) -> DeviceProfile:
    """A profile for this host reached through LocalTransport, with the fake tools as binaries."""
    bins = tmp_path / "bin"
    zone = tmp_path / "thermal_zone0" / "temp"
    zone.parent.mkdir()
    zone.write_text("41000\n")
    text = f"""
name = "fakedev"
human_name = "This host with the fake benchmark tools"
kind = "devkit"
soc = "host CPU"
abi = "native"
remote_work_dir = "{tmp_path / 'remote'}"

[connection]
transport = "local"

[cpu]
big_mask = "{first_allowed_cpu_mask()}"
cores = "big"
default_threads = 1

[runtimes.tflite]
delegates = ["xnnpack", "cpu", "nnapi"]
binary = "{wrapper(bins, FAKE_BENCHMARK_MODEL)}"

[runtimes.onnx]
delegates = ["cpu", "nnapi"]
binary = "{wrapper(bins, FAKE_ORT_PERF_TEST)}"

[thermal]
source = "sysfs"
zone = "{zone}"
cooldown_c = 45.0
fixed_pause_s = 0.0
"""
    path = tmp_path / "fakedev.toml"
    path.write_text(text, encoding="utf-8")
    return load_profile(path)


def assert_plausible(m) -> None:
    assert m.runs > 0 and m.mean_ms > 0 and m.min_ms > 0
    assert m.min_ms <= m.mean_ms <= m.max_ms
    if m.median_ms is not None:
        assert m.min_ms <= m.median_ms <= m.max_ms
    json.dumps(m.to_dict())


# ---- host runners ----------------------------------------------------------------------------


def test_tflite_host_runner_real_timings(tiny_models: dict[str, Path]) -> None:
    runner = create_runner("tflite-host", load_profile("host"))
    assert isinstance(runner, TfliteHostRunner)
    m = runner.measure(tiny_models["tflite"], runs=20, warmup=3, threads=2)
    assert_plausible(m)
    assert (m.runner, m.runtime, m.delegate, m.threads, m.warmup) == ("tflite-host", "tflite", "xnnpack", 2, 3)
    assert m.runs == 20 - m.outliers_rejected and len(m.times_ms) == 20
    assert m.runtime_version == metadata.version("ai-edge-litert")
    assert m.init_ms is not None and m.init_ms > 0 and m.first_ms is not None and m.first_ms > 0
    cpu = runner.measure(tiny_models["tflite"], MeasureConfig(runs=5, warmup=1, delegate="cpu",
                                                              repetitions=2, outliers="none"))
    assert (cpu.delegate, cpu.repetitions, cpu.runs, len(cpu.times_ms)) == ("cpu", 2, 10, 10)


def test_onnx_host_runner_real_timings(tiny_models: dict[str, Path]) -> None:
    import onnxruntime

    m = create_runner("onnx-host", load_profile("host")).measure(tiny_models["onnx"], runs=20, warmup=2)
    assert_plausible(m)
    assert (m.runner, m.delegate, m.threads, m.runtime_version) == ("onnx-host", "cpu", 1, onnxruntime.__version__)


def stepping_clock(durations_ms: list[float]) -> Callable[[], int]:
    """perf_counter_ns stand-in: open() takes 2 ms, then each run takes the next duration."""
    stamps = [0, 2_000_000]
    now = 2_000_000
    for d in durations_ms:
        stamps.extend((now, now + int(d * 1e6)))
        now += int(d * 1e6) + 1000
    it = iter(stamps)
    return lambda: next(it)


def test_host_runner_times_only_the_timed_runs_and_rejects_outliers(tiny_models: dict[str, Path]) -> None:
    durations = [50.0, 7.0, 1.0, 1.1, 0.9, 1.0, 100.0, 1.05, 0.95, 1.0]  # the first 2 are warm-up runs
    runner = TfliteHostRunner(load_profile("host"), clock_ns=stepping_clock(durations),
                              load_probe=lambda: 1)
    m = runner.measure(tiny_models["tflite"], runs=8, warmup=2)
    assert m.times_ms == (1.0, 1.1, 0.9, 1.0, 100.0, 1.05, 0.95, 1.0)
    assert (m.outliers_rejected, m.runs, m.max_ms, m.min_ms) == (1, 7, 1.1, 0.9)
    assert m.mean_ms == pytest.approx(7.0 / 7)
    assert (m.init_ms, m.first_ms) == (2.0, 50.0)


def test_host_runner_repeats_a_repetition_that_ran_next_to_a_busy_task(tiny_models: dict[str, Path]) -> None:
    """Another runnable task before or after a repetition: wait, measure that repetition again;
    what was seen is recorded, and a machine that never calms down is reported, not hidden."""
    from hwnas.runners.host import CONTENTION_PAUSE_S, CONTENTION_RETRIES

    probes = iter([1, 3, 1, 1, 1, 1])  # repetition 1: busy after its runs, then quiet; repetition 2 quiet
    pauses: list[float] = []
    runner = TfliteHostRunner(load_profile("host"), load_probe=lambda: next(probes), sleep=pauses.append)
    m = runner.measure(tiny_models["tflite"], runs=3, warmup=1, repetitions=2, cool_down=False)
    assert pauses == [CONTENTION_PAUSE_S]
    assert m.extra == {"contended_repetitions": 0, "busy_tasks_max": 2}
    assert m.runs <= 6 and len(m.times_ms) == 6  # the disturbed attempt's runs are not kept

    pauses.clear()
    busy = TfliteHostRunner(load_profile("host"), load_probe=lambda: 4, sleep=pauses.append)
    m = busy.measure(tiny_models["tflite"], runs=2, warmup=0, repetitions=2, cool_down=False)
    assert pauses == [CONTENTION_PAUSE_S] * (2 * CONTENTION_RETRIES)
    assert m.extra == {"contended_repetitions": 2, "busy_tasks_max": 3}
    # a machine that stays busy: after BUSY_STREAK_LIMIT contended repetitions it stops waiting
    pauses.clear()
    busy.measure(tiny_models["tflite"], runs=2, warmup=0, repetitions=3, cool_down=False)
    assert pauses == [CONTENTION_PAUSE_S] * CONTENTION_RETRIES  # the 3rd in a row; then none


def test_running_tasks_sees_a_busy_process() -> None:
    """The real probe (Linux /proc/stat) counts a spinning child next to the reader."""
    from hwnas.runners.host import running_tasks

    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        seen = max(running_tasks() for _ in range(20))
    finally:
        child.kill()
        child.wait()
    assert seen >= 2


def test_host_runner_errors(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    host = load_profile("host")
    runner = create_runner("tflite-host", host)
    with pytest.raises(HwnasError, match=r"delegate 'gpu' is not available .* available: 'xnnpack', 'cpu'"):
        runner.measure(tiny_models["tflite"], delegate="gpu")
    with pytest.raises(HwnasError, match="LiteRT's Python interpreter .* has no op profiler"):
        runner.measure(tiny_models["tflite"], op_profiling=True)
    with pytest.raises(HwnasError, match=r"measures \.tflite files"):
        runner.measure(tiny_models["onnx"])
    with pytest.raises(HwnasError, match="does not exist"):
        runner.measure(tmp_path / "missing.tflite")
    with pytest.raises(HwnasError, match="runs = 0 must be at least 1"):
        runner.measure(tiny_models["tflite"], runs=0)
    with pytest.raises(HwnasError, match=r"unknown measure setting\(s\) \['iterations'\]"):
        runner.measure(tiny_models["tflite"], iterations=3)
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    with pytest.raises(HwnasError, match="LiteRT cannot load"):
        runner.measure(broken, runs=1)


# ---- registry and commands -------------------------------------------------------------------


def test_registry() -> None:
    assert runner_names() == ["onnx-host", "onnx-adb", "tflite-host", "tflite-adb"]
    assert runner_class("tflite-adb") is BenchmarkModelRunner and runner_class("onnx-host") is OnnxHostRunner
    with pytest.raises(HwnasError, match="unknown runner 'tvm-adb'; allowed: onnx-host, onnx-adb"):
        runner_class("tvm-adb")
    with pytest.raises(HwnasError, match="'tflite-int8-host' is now 'tflite-host'"):
        runner_class("tflite-int8-host")
    s22, host = load_profile("s22"), load_profile("host")
    assert (default_runner_name(host, "tflite"), default_runner_name(s22, "onnx")) == ("tflite-host", "onnx-adb")
    with pytest.raises(HwnasError, match="needs a transport"):
        create_runner("tflite-adb", s22)
    with pytest.raises(HwnasError, match="use tflite-adb"):
        create_runner("tflite-host", s22)
    with pytest.raises(HwnasError, match="takes no transport"):
        create_runner("onnx-host", host, LocalTransport())


def test_benchmark_model_and_ort_commands() -> None:
    assert benchmark_model_command("/d/bm", "/d/m.tflite", threads=4, warmup=5, runs=50, delegate="nnapi",
                                   op_profiling=True) == [
        "/d/bm", "--graph=/d/m.tflite", "--num_threads=4", "--warmup_runs=5", "--num_runs=50",
        "--min_secs=0", "--warmup_min_secs=0", "--use_nnapi=true", "--enable_op_profiling=true"]
    flags = {d: benchmark_model_command("b", "m", threads=1, warmup=0, runs=1, delegate=d)[-1]
             for d in ("cpu", "xnnpack", "gpu")}
    assert flags == {"cpu": "--use_xnnpack=false", "xnnpack": "--use_xnnpack=true", "gpu": "--use_gpu=true"}
    assert ort_perf_test_command("/d/ort", "/d/m.onnx", threads=2, runs=30, delegate="nnapi") == [
        "/d/ort", "-m", "times", "-r", "30", "-x", "2", "-e", "nnapi", "-I", "/d/m.onnx"]


# ---- device runners with canned real outputs --------------------------------------------------


class FakeTransport:
    """Records commands and answers them with ``handler(argv) -> ShellResult``."""

    name = "fake-phone"

    def __init__(self, handler: Callable[[list[str]], ShellResult]) -> None:
        self.handler = handler
        self.calls: list[list[str]] = []
        self.pushed: list[tuple[Path, str]] = []

    def shell(self, cmd: list[str] | str, timeout: float = 120.0) -> ShellResult:
        argv = list(cmd) if not isinstance(cmd, str) else cmd.split()
        self.calls.append(argv)
        return self.handler(argv)

    def push(self, local: Path, remote: str) -> None:
        self.pushed.append((Path(local), remote))


def phone(tool_output: str, *, tool_exit: int = 0, binary_present: bool = True,
          thermal: str | None = None) -> FakeTransport:
    def handler(argv: list[str]) -> ShellResult:
        if argv[:2] == ["test", "-x"]:
            return ShellResult(0 if binary_present else 1, "", "")
        if argv[0] == "mkdir":
            return ShellResult(0, "", "")
        if argv[:2] == ["dumpsys", "thermalservice"] or argv[0] == "cat":
            return ShellResult(0 if thermal is not None else 1, thermal or "", "")
        return ShellResult(tool_exit, "", tool_output)  # the tools log to stderr

    return FakeTransport(handler)


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_benchmark_model_runner_on_s22_with_real_output(tiny_models: dict[str, Path]) -> None:
    transport = phone(fixture_text("benchmark_model-nightly-android-pixel6-cpu-xnnpack-partial.txt"),
                      thermal=fixture_text("dumpsys-thermalservice-android-xiaomi-snapdragon-aidl-hal.txt"))
    slept: list[float] = []
    runner = create_runner("tflite-adb", load_profile("s22"), transport, sleep=slept.append)
    m = runner.measure(tiny_models["tflite"])
    assert transport.pushed == [(tiny_models["tflite"], "/data/local/tmp/hwnas/tiny.tflite")]
    tool_calls = [c for c in transport.calls if c[0] == "taskset"]
    assert tool_calls == [["taskset", "f0", "/data/local/tmp/hwnas/benchmark_model",
                           "--graph=/data/local/tmp/hwnas/tiny.tflite", "--num_threads=4", "--warmup_runs=10",
                           "--num_runs=50", "--min_secs=0", "--warmup_min_secs=0", "--use_xnnpack=true"]]
    assert (m.mean_ms, m.median_ms, m.std_ms, m.min_ms, m.max_ms) == (9.21205, 9.196, 0.138, 8.945, 9.66)
    assert m.percentiles_ms == {"p5": 9.057, "p50": 9.196, "p95": 9.485}
    assert (m.runs, m.threads, m.cpu_mask, m.device, m.delegate) == (109, 4, "f0", "s22", "xnnpack")
    assert (m.init_ms, m.first_ms) == (22.942, 18.763)
    assert m.temp_before_c == 35.8 and m.temp_after_c == 35.8 and slept == []  # already cool
    assert m.extra["delegate_nodes"] == [{"delegate": "TfLiteXNNPackDelegate", "replaced": 253, "total": 266,
                                          "partitions": 26}]
    assert m.extra["command"].startswith("taskset f0 /data/local/tmp/hwnas/benchmark_model --graph=")


def test_benchmark_model_runner_repetitions_pool_real_output(tiny_models: dict[str, Path]) -> None:
    transport = phone(fixture_text("benchmark_model-tf2.4-android-mi11-cpu-fp32.txt"))
    runner = BenchmarkModelRunner(load_profile("s22"), transport, sleep=lambda s: None)
    m = runner.measure(tiny_models["tflite"], repetitions=3, threads=2, cores="little")
    assert (m.repetitions, m.runs) == (3, 150)
    assert (m.mean_ms, m.std_ms) == (pytest.approx(249.684), pytest.approx(1.442, rel=0.01))
    assert m.cpu_mask == "0f" and m.temp_before_c is None  # dumpsys unavailable: fixed pause
    assert sum(1 for c in transport.calls if c[0] == "taskset") == 3


def test_sysfs_cool_down_waits_until_cool(tiny_models: dict[str, Path]) -> None:
    temps = iter(["48000", "46000", "44500", "44000"])

    def handler(argv: list[str]) -> ShellResult:
        if argv[0] == "cat":
            assert argv[1] == "/sys/class/thermal/thermal_zone0/temp"
            return ShellResult(0, next(temps) + "\n", "")
        if argv[0] == "taskset":
            return ShellResult(0, fixture_text("benchmark_model-tf2.4-android-mi11-cpu-int8.txt"), "")
        return ShellResult(0, "", "")

    slept: list[float] = []
    runner = BenchmarkModelRunner(load_profile("sd855-hdk"), FakeTransport(handler), sleep=slept.append,
                                  clock=lambda: float(len(slept)) * 5.0)
    m = runner.measure(tiny_models["tflite"], runs=50)
    assert slept == [5.0, 5.0] and m.cooldown_s == 10.0  # 48 -> 46 -> 44.5 (< 45)
    assert (m.temp_before_c, m.temp_after_c, m.mean_ms) == (44.5, 44.0, 95.7883)


def test_ort_runner_on_s22_with_real_output(tiny_models: dict[str, Path]) -> None:
    transport = phone(fixture_text("onnxruntime_perf_test-android-pixel6-cpu-1thread.txt"))
    m = create_runner("onnx-adb", load_profile("s22"), transport, sleep=lambda s: None).measure(
        tiny_models["onnx"], runs=100, threads=1)
    assert [c for c in transport.calls if c[0] == "taskset"] == [
        ["taskset", "f0", "/data/local/tmp/hwnas/onnxruntime_perf_test", "-m", "times", "-r", "100", "-x", "1",
         "-e", "cpu", "-I", "/data/local/tmp/hwnas/tiny.onnx"]]
    assert (m.mean_ms, m.median_ms, m.min_ms, m.max_ms, m.runs, m.warmup) == (
        19.918, 19.9047, 19.7812, 20.2704, 100, 1)
    assert m.std_ms is None and m.percentiles_ms["p99"] == 20.2704
    assert m.init_ms == pytest.approx(50.8382) and m.extra["peak_working_set_bytes"] == 109531136


def test_device_failure_quotes_the_tool(tiny_models: dict[str, Path]) -> None:
    transport = phone(fixture_text("benchmark_model-nightly-android-pixel6-error-nnapi-op-failed.txt"), tool_exit=1)
    runner = BenchmarkModelRunner(load_profile("s22"), transport, sleep=lambda s: None)
    with pytest.raises(HwnasError, match=r"benchmark_model on s22: benchmark_model failed: ERROR: NN API returned "
                                         r"error ANEURALNETWORKS_OP_FAILED.*\(exit code 1\)"):
        runner.measure(tiny_models["tflite"], delegate="nnapi")
    garbage = phone("Segmentation fault\n", tool_exit=139)
    with pytest.raises(HwnasError, match=r"no timing lines.*Segmentation fault"):
        BenchmarkModelRunner(load_profile("s22"), garbage, sleep=lambda s: None).measure(tiny_models["tflite"])


def test_missing_binary_says_where_and_how(tiny_models: dict[str, Path]) -> None:
    runner = BenchmarkModelRunner(load_profile("s22"), phone("", binary_present=False), sleep=lambda s: None)
    with pytest.raises(HwnasError) as exc:
        runner.measure(tiny_models["tflite"])
    msg = str(exc.value)
    assert "benchmark_model not found or not executable at /data/local/tmp/hwnas/benchmark_model" in msg
    assert "runtimes.tflite.binary" in msg and "s22.toml" in msg
    assert "android_aarch64_benchmark_model" in msg
    assert "adb push benchmark_model /data/local/tmp/hwnas/benchmark_model" in msg
    watch = BenchmarkModelRunner(load_profile("watch"), phone("", binary_present=False), sleep=lambda s: None)
    with pytest.raises(HwnasError, match=r"android_arm_benchmark_model.*adb -s 192\.168\.0\.100:5555 push"):
        watch.measure(tiny_models["tflite"])


def test_old_tool_without_counts_uses_requested_runs(tiny_models: dict[str, Path]) -> None:
    transport = phone(fixture_text("benchmark_model-tflite-readme-android-op-profiling-old-avg-format.txt"))
    m = BenchmarkModelRunner(load_profile("s22"), transport, sleep=lambda s: None).measure(
        tiny_models["tflite"], runs=50, op_profiling=True)
    assert (m.mean_ms, m.runs, m.std_ms, m.init_ms) == (pytest.approx(79.7609), 50, None, 38.467)
    assert "--enable_op_profiling=true" in m.extra["command"]
    assert m.extra["op_profile"][0] == {"node_type": "CONV_2D", "name": "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]",
                                        "avg_ms": 4.269, "percent": 0.107}
    assert m.extra["op_profile_by_type"][0] == {"node_type": "CONV_2D", "count": 15, "avg_ms": 1.406}


def test_thermal_readers() -> None:
    dumpsys = fixture_text("dumpsys-thermalservice-android-xiaomi-snapdragon-aidl-hal.txt")
    s22 = load_profile("s22").thermal
    read = temperature_reader(s22, phone("", thermal=dumpsys))
    assert read is not None and read() == 35.8
    assert temperature_reader(s22, phone("", thermal=None))() is None  # type: ignore[misc]
    hdk = load_profile("sd855-hdk").thermal
    assert temperature_reader(hdk, phone("", thermal="52000\n"))() == 52.0  # type: ignore[misc]
    assert temperature_reader(hdk, phone("", thermal="garbage"))() is None  # type: ignore[misc]
    assert temperature_reader(load_profile("host").thermal, phone("")) is None


# ---- the fake tools, through a subprocess and through LocalTransport --------------------------


def run_tool(tool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(tool), *args], capture_output=True, text=True, timeout=120)


def test_fake_benchmark_model_output_parses(tiny_models: dict[str, Path]) -> None:
    proc = run_tool(FAKE_BENCHMARK_MODEL, f"--graph={tiny_models['tflite']}", "--num_threads=2",
                    "--warmup_runs=3", "--num_runs=15", "--min_secs=0", "--warmup_min_secs=0",
                    "--use_xnnpack=true", "--enable_op_profiling=true", "--some_future_flag=1")
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: Unconsumed cmdline flags: --some_future_flag=1" in proc.stderr
    r = parse_benchmark_model(proc.stdout + proc.stderr, source="fake")
    assert (r.count, r.warmup.count if r.warmup else None) == (15, 3)
    assert 0 < r.min_us <= r.avg_us <= r.max_us  # type: ignore[operator]
    assert r.min_us <= r.median_us <= r.max_us  # type: ignore[operator]
    assert r.init_us is not None and r.init_us > 0 and r.first_us is not None and r.first_us > 0
    assert r.param("Num threads") == "2" and r.tf_version == metadata.version("ai-edge-litert")
    assert r.memory_kind == "delta" and r.memory_overall_mb is not None
    assert r.delegates_created == ("XNNPACK",)
    assert r.op_profile is not None and r.op_profile.run_order[0].node_type == "Invoke"
    assert r.op_profile.timings is not None and r.op_profile.timings.count == 15
    assert r.init_profile is not None and r.init_profile.run_order[0].node_type == "AllocateTensors"


def test_fake_benchmark_model_missing_graph(tmp_path: Path) -> None:
    proc = run_tool(FAKE_BENCHMARK_MODEL, f"--graph={tmp_path / 'nope.tflite'}")
    assert proc.returncode == 1
    assert "ERROR: Benchmarking failed." in proc.stderr
    with pytest.raises(HwnasError, match=r"Could not open .*nope\.tflite"):
        parse_benchmark_model(proc.stderr)


def test_fake_ort_perf_test_output_parses(tiny_models: dict[str, Path]) -> None:
    proc = run_tool(FAKE_ORT_PERF_TEST, "-m", "times", "-r", "12", "-x", "1", "-e", "cpu", "-I",
                    str(tiny_models["onnx"]))
    assert proc.returncode == 0, proc.stderr
    r = parse_ort_perf_test(proc.stdout)
    assert r.runs == 12 and r.intra_op_threads == 1 and r.first_inference_ms is not None
    assert 0 < r.min_ms <= r.avg_ms <= r.max_ms  # type: ignore[operator]
    assert r.min_ms <= r.p50_ms <= r.p999_ms <= r.max_ms  # type: ignore[operator]
    failed = run_tool(FAKE_ORT_PERF_TEST, "-m", "times", "-r", "2", "-e", "nnapi", str(tiny_models["onnx"]))
    assert failed.returncode != 0
    with pytest.raises(HwnasError, match="NNAPI is not supported in this build"):
        parse_ort_perf_test(failed.stdout + failed.stderr)


def test_tflite_adb_runner_end_to_end_through_local_transport(
        tiny_models: dict[str, Path], local_device: DeviceProfile) -> None:
    transport = LocalTransport(name="fakedev")
    runner = create_runner("tflite-adb", local_device, transport)
    m = runner.measure(tiny_models["tflite"], runs=10, warmup=2, op_profiling=True)
    assert_plausible(m)
    assert (m.runs, m.warmup, m.threads, m.cpu_mask) == (10, 2, 1, first_allowed_cpu_mask())
    assert m.runtime_version == metadata.version("ai-edge-litert")
    assert m.temp_before_c == 41.0 and m.temp_after_c == 41.0  # read with `cat` through the transport
    assert (Path(local_device.remote_work_dir or "") / "tiny.tflite").read_bytes() == tiny_models["tflite"].read_bytes()
    assert m.extra["op_profile"][0]["node_type"] == "Invoke"
    cpu_only = runner.measure(tiny_models["tflite"], runs=3, warmup=0, delegate="cpu")
    assert cpu_only.runs == 3 and "--use_xnnpack=false" in cpu_only.extra["command"]
    with pytest.raises(HwnasError, match=r"NNAPI delegate is not available.*\(exit code 1\)"):
        runner.measure(tiny_models["tflite"], runs=2, delegate="nnapi")
    missing = load_profile(local_device.source or "", overrides={"runtimes.tflite.binary": "/nonexistent/bm"})
    with pytest.raises(HwnasError, match="not found or not executable at /nonexistent/bm on this computer"):
        create_runner("tflite-adb", missing, transport).measure(tiny_models["tflite"], runs=1)


def test_onnx_adb_runner_end_to_end_through_local_transport(
        tiny_models: dict[str, Path], local_device: DeviceProfile) -> None:
    runner = create_runner("onnx-adb", local_device, LocalTransport(name="fakedev"))
    assert isinstance(runner, OrtPerfTestRunner)
    m = runner.measure(tiny_models["onnx"], runs=10)
    assert_plausible(m)
    assert (m.runs, m.warmup, m.runtime) == (10, 1, "onnx")
    assert m.first_ms is not None and m.percentiles_ms["p50"] == m.median_ms
    with pytest.raises(HwnasError, match=r"NNAPI is not supported in this build.*\(exit code 255\)"):
        runner.measure(tiny_models["onnx"], runs=2, delegate="nnapi")
