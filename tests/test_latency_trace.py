"""Tables from op-level traces (``hwnas profile --method trace``) and sustained latency
(``--sustained``): set cover, node-name mapping on real exports, the real onnxruntime profiler,
benchmark_model op profiles through a fake phone, sustained flags on the host and on devices."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SPACE_NAMES, tiny_space
from conftest_adb import adb_test_key, make_loopback_adbd  # noqa: F401  (fixtures)
from hwnas.devices.profiles import load_profile
from hwnas.devices.transport import LocalTransport, ShellResult
from hwnas.errors import HwnasError
from hwnas.latency.keys import op_key, space_ops
from hwnas.latency.opmodels import OpModelCache, SubnetModelCache
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.profile import ProfileConfig, profile_device
from hwnas.latency.table import LatencyTable, load_table, space_tag, table_path
from hwnas.latency.trace import cover_subnets, op_index, resolve_method, subnet_op_times, trace_entries
from hwnas.runners.benchmark_model import BenchmarkModelRunner, parse_benchmark_model
from hwnas.runners.registry import create_runner

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "real-outputs"


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_cover_subnets_execute_every_key_with_few_subnets(name):
    s = tiny_space(name, resolution=16)
    cover = cover_subnets(s)
    keys = set(space_ops(s))
    got = {op_key(spec) for g in cover for spec in s.layers(g)}
    assert keys <= got
    options = sum(1 for _ in s.block_options())
    assert len(cover) < options  # far fewer models than one per block option
    assert len(cover) == len(set(cover))


def test_op_index_reads_our_exporters_node_names():
    assert op_index("/ops.12/expand_conv/Conv") == 12
    assert op_index("/ops.3/dw_act/Clip_output_0_nchwc") == 3
    assert op_index("ReorderOutput_token_134") is None and op_index("TfLiteXNNPackDelegate") is None
    # TFLite tensor names (litert-torch) list every module a fused kernel merges: the latest runs it
    fused = ("[hwnas.supernet.Subnet/hwnas.nn.blocks.MBConv_3/torch.nn.modules.activation.ReLU6_expand_act;;"
             "hwnas.supernet.Subnet/hwnas.nn.blocks.MBConv_2/hwnas.nn.blocks.DynamicBatchNorm2d_dw_bn;]:9")
    assert op_index(fused) == 3
    assert op_index("hwnas.supernet.Subnet/hwnas.nn.blocks.ConvBNAct_0/hwnas.nn.blocks.DynamicConv2d_conv;1") == 0
    assert op_index("[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0") is None


@pytest.fixture(scope="module")
def tflite_subnet(tmp_path_factory):
    s = tiny_space("mbv2", resolution=16)
    genes = cover_subnets(s)[0]
    cache = SubnetModelCache(s, "tflite", tmp_path_factory.mktemp("subnets"))
    return s, genes, cache.get(genes)


def _tflite_nodes(path: Path) -> list[tuple[str, str]]:
    """(op name, output tensor name) of every node of a .tflite file, in execution order."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    names = {d["index"]: d["name"] for d in it.get_tensor_details()}
    return [(op["op_name"], names[op["outputs"][0]]) for op in it._get_ops_details()]  # noqa: SLF001


def test_tflite_export_names_map_every_node_to_its_op(tflite_subnet):
    s, genes, path = tflite_subnet
    nodes = _tflite_nodes(path)
    idx = [op_index(name) for _, name in nodes]
    # every kernel of a litert-torch export names the Subnet op it runs, but the last one, which
    # writes the graph output (serving_default_output_0_output): the classifier
    assert None not in idx[:-1] and idx[-1] is None and nodes[-1][0] == "FULLY_CONNECTED"
    assert idx[:-1] == sorted(idx[:-1])  # in execution order
    n_ops = len(s.layers(genes))
    assert set(idx[:-1]) == set(range(n_ops - 1))
    _, per_op = subnet_op_times([{"name": name, "avg_ms": 1.0} for _, name in nodes], n_ops, "test")
    assert (per_op > 0).all() and per_op[-1] == 1  # exact: every op has its kernels


def _bm_output(nodes: list[tuple[str, str, float]], total_us: float) -> str:
    """A benchmark_model --enable_op_profiling run printing ``nodes`` (type, name, avg ms): the
    real riscv64 capture's text with its run-order table and timings replaced."""
    text = (FIXTURES / "benchmark_model-tf2.8-linux-qemu-riscv64-cpu-op-profiling.txt").read_text(encoding="utf-8")
    head = text[: text.index("Operator-wise Profiling Info for Regular Benchmark Runs:")]
    head = re.sub(r"Inference \(avg\): \S+", f"Inference (avg): {total_us:g}", head)
    head = re.sub(r"count=50 first=.*", f"count=50 first={total_us:g} curr={total_us:g} min={total_us:g} "
                  f"max={total_us:g} avg={total_us:g} std=1", head)
    rows = ["Operator-wise Profiling Info for Regular Benchmark Runs:",
            "============================== Run Order ==============================",
            "\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]"]
    start = 0.0
    for i, (kind, name, ms) in enumerate(nodes):
        rows.append(f"\t{kind:>24}\t{start:17.3f}\t{ms:9.3f}\t{ms:9.3f}\t  1.000%\t  1.000%\t     0.000\t        1\t[{name}]:{i}")
        start += ms
    rows += ["", f"Timings (microseconds): count=50 first={total_us:g} curr={total_us:g} min={total_us:g} "
                 f"max={total_us:g} avg={total_us:g} std=1", "Memory (bytes): count=0", f"{len(nodes)} nodes observed", ""]
    return head + "\n".join(rows)


class Phone:
    """A phone whose benchmark_model prints ``output``; records every command."""

    name = "fake-phone"

    def __init__(self, output: str) -> None:
        self.output = output
        self.calls: list[list[str]] = []

    def shell(self, cmd, timeout=120.0):
        argv = list(cmd) if not isinstance(cmd, str) else cmd.split()
        self.calls.append(argv)
        if argv[:2] == ["test", "-x"] or argv[0] == "mkdir":
            return ShellResult(0, "", "")
        if argv[0] == "cat" or argv[:2] == ["dumpsys", "thermalservice"]:
            return ShellResult(1, "", "")
        return ShellResult(0, "", self.output)

    def push(self, local, remote):
        pass


def test_benchmark_model_op_profile_of_our_export_maps_to_ops(tflite_subnet):
    """The device path: benchmark_model's op profile (rows named by the real tensor names of our
    export) parsed by the tflite-adb runner and mapped back to the subnet's ops."""
    s, genes, path = tflite_subnet
    n_ops = len(s.layers(genes))
    nodes = [(kind, name, 0.010 * (1 + (op_index(name) if op_index(name) is not None else n_ops - 1)))
             for kind, name in _tflite_nodes(path)]
    phone = Phone(_bm_output(nodes, total_us=1000 * sum(ms for *_, ms in nodes) + 40))
    runner = BenchmarkModelRunner(load_profile("s22"), phone, sleep=lambda s: None)
    m = runner.measure(path, runs=50, op_profiling=True)
    assert "--enable_op_profiling=true" in m.extra["command"]
    rows = m.extra["op_profile"]
    assert [r["avg_ms"] for r in rows] == pytest.approx([ms for *_, ms in nodes], abs=1e-6)
    specs = s.layers(genes)
    t, n = subnet_op_times(rows, len(specs), "test")
    assert n.sum() == len(nodes) and (n > 0).all()
    per_op = {i: sum(ms for _, name, ms in nodes if (op_index(name) if op_index(name) is not None else n_ops - 1) == i)
              for i in range(len(specs))}
    assert t == pytest.approx([per_op[i] for i in range(len(specs))])
    entries, summary = trace_entries(s, [genes], [m.center_ms], [rows], runs=50)
    assert set(entries) == {op_key(sp) for sp in specs}
    # one subnet: the gap to the end-to-end time is spread over the nodes; the sum reproduces it
    assert summary["subnets"][0]["predicted_ms"] == pytest.approx(m.center_ms, rel=1e-6)


@pytest.mark.parametrize("fixture", ["benchmark_model-tf2.4dev-android-poco-x3-gpu-op-profiling.txt",
                                     "benchmark_model-tflite-readme-android-op-profiling-old-avg-format.txt"])
def test_op_profiles_without_our_names_are_refused(fixture):
    r = parse_benchmark_model((FIXTURES / fixture).read_text(encoding="utf-8"))
    rows = [{"node_type": x.node_type, "name": x.name, "avg_ms": x.avg_ms} for x in r.op_profile.run_order]
    with pytest.raises(HwnasError, match="no profiled node names an op.*--delegate cpu, or with --method one-op"):
        subnet_op_times(rows, 5, fixture)


def test_onnxruntime_profiler_rows_name_every_op_of_a_real_export(tmp_path):
    s = tiny_space("mbv2", resolution=16)
    genes = s.largest()
    path = SubnetModelCache(s, "onnx", tmp_path).get(genes)
    runner = create_runner("onnx-host", load_profile("host"))
    m = runner.measure(path, runs=6, warmup=2, op_profiling=True, cool_down=False)
    rows = m.extra["op_profile"]
    assert rows[0]["run_ms"] > 0 and all(r["count"] == 6 for r in rows)  # warm-up runs left out
    assert {"Conv", "Gemm"} <= {r["node_type"] for r in rows}
    specs = s.layers(genes)
    t, n = subnet_op_times(rows, len(specs), "test")
    assert (n > 0).all() and (t > 0).all()  # every op of the subnet has profiled nodes
    assert not list(Path("/tmp").glob("hwnas-ort-profile-*/ort*.json"))  # the trace file is removed


def test_trace_profile_on_host_fills_the_whole_space(tmp_path):
    """The real profiler on real exports: every key, the fitted overheads, a calibration that the
    traced subnets reproduce, and a method the table keeps."""
    s = tiny_space("mbv2", resolution=16)
    host = load_profile("host")
    cfg = ProfileConfig(runtime="onnx", method="trace", warmup=2, runs=10, rounds=2, cool_down=False, canary=False)
    from hwnas.latency.profile import plan_profile

    plan = plan_profile(host, s, ProfileConfig(runtime="onnx"), tmp_path / "t")  # --dry-run: auto is trace here
    assert plan.method == "trace" and plan.subnets == cover_subnets(s) and len(plan.keys) == len(space_ops(s))
    one_op = plan_profile(host, s, ProfileConfig(runtime="tflite"), tmp_path / "t")
    assert one_op.method == "one-op" and one_op.subnets == []
    seen = []
    table = profile_device(host, s, cfg, tables_dir=tmp_path / "t", cache=OpModelCache("onnx", tmp_path / "c" / "ops"),
                           on_progress=lambda k, d, n: seen.append((d, n)))
    cover = cover_subnets(s)
    assert seen[-1] == (len(cover) * 5, len(cover) * 5)  # exports, then 2 rounds of e2e + trace
    assert len(list((tmp_path / "c" / "subnets").rglob("*.onnx"))) == len(cover)
    assert not table.missing(space_ops(s))
    assert table.metadata["method"] == "trace"
    trace = table.metadata["traces"][space_tag(s)]
    assert len(trace["subnets"]) == len(cover) and trace["runner"] == "onnx-host"
    assert all(e["method"] == "trace" and e["median_ms"] > 0 for e in table.entries.values())
    cal = table.calibration(space_tag(s))
    assert cal["source"] == "trace" and cal["offset_ms"] == trace["run_overhead_ms"]
    pred = LatencyPredictor(table, s)(np.asarray(cover))
    e2e = np.array([x["e2e_ms"] for x in trace["subnets"]])
    assert np.abs(pred - e2e).max() / e2e.min() < 0.35  # fitted on them; medians over occurrences differ
    again = LatencyTable.load(table.path)
    assert again.entries == table.entries
    with pytest.raises(HwnasError, match="measured with --method trace, this profile uses --method one-op"):
        profile_device(host, s, ProfileConfig(runtime="onnx", method="one-op"), tables_dir=tmp_path / "t", resume=True)
    assert resolve_method("auto", create_runner("onnx-host", host), again) == "trace"
    assert resolve_method("auto", create_runner("onnx-host", host)) == "trace"
    assert resolve_method("auto", create_runner("onnx-host", host), max_keys=3) == "one-op"
    assert resolve_method("auto", create_runner("tflite-host", host)) == "one-op"
    with pytest.raises(HwnasError, match="--max-keys limits a one-op profile"):
        resolve_method("trace", None, max_keys=2)


# ---- sustained latency -----------------------------------------------------------------------------


def test_host_runner_runs_continuously_before_timing(tmp_path):
    s = tiny_space("mbv2", resolution=16)
    path = SubnetModelCache(s, "onnx", tmp_path).get(s.smallest())
    from hwnas.runners.host import OnnxHostRunner

    calls = []

    class Counting(OnnxHostRunner):
        def open(self, model, threads, delegate, rng):
            invoke = super().open(model, threads, delegate, rng)
            return lambda: (calls.append(1), invoke())

    runner = Counting(load_profile("host"), load_probe=lambda: None)
    burst = runner.measure(path, runs=5, warmup=1, cool_down=False)
    assert len(calls) == 6
    t0 = time.perf_counter()
    m = runner.measure(path, runs=5, warmup=1, cool_down=False, sustained_s=0.6)
    assert time.perf_counter() - t0 >= 0.6 and len(calls) > 6 + 6 + 50  # ran continuously in between
    assert m.extra["sustained_s"] == 0.6 and "sustained_s" not in burst.extra
    assert 3 <= m.runs <= 5 and {"p50", "p90"} <= set(m.percentiles_ms)  # after outlier rejection
    with pytest.raises(HwnasError, match="sustained_s = -1 must be 0 or more"):
        runner.measure(path, sustained_s=-1)


def test_sustained_flags_reach_the_device_tools(tmp_path):
    """benchmark_model keeps warming up for S seconds (--warmup_min_secs); onnxruntime_perf_test
    first runs for S seconds in duration mode, then the timed command."""
    from hwnas.runners.ort_perf_test import OrtPerfTestRunner

    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    bm = (FIXTURES / "benchmark_model-tf2.4-android-mi11-cpu-fp32.txt").read_text(encoding="utf-8")
    phone = Phone(bm)
    m = BenchmarkModelRunner(load_profile("s22"), phone, sleep=lambda s: None).measure(model, sustained_s=30)
    tool = [c for c in phone.calls if any(a.startswith("--graph=") for a in c)]
    assert len(tool) == 1 and "--warmup_min_secs=30" in tool[0] and "--min_secs=0" in tool[0]
    assert m.extra["sustained_s"] == 30
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    ort = Phone((FIXTURES / "onnxruntime_perf_test-android-pixel6-cpu-1thread.txt").read_text(encoding="utf-8"))
    m = OrtPerfTestRunner(load_profile("s22"), ort, sleep=lambda s: None).measure(onnx, sustained_s=20, repetitions=2,
                                                                                  cool_down=False)
    tool = [c for c in ort.calls if "-I" in c]
    assert len(tool) == 4  # per repetition: sustain, then measure
    assert tool[0][tool[0].index("-m") + 1:][:3] == ["duration", "-t", "20"]
    assert tool[1][tool[1].index("-m") + 1] == "times"
    assert m.extra["sustain_command"].endswith(tool[0][-1]) and "-m duration -t 20" in m.extra["sustain_command"]


@pytest.mark.slow
def test_sustained_runs_through_the_fake_tools(tmp_path):
    """The real command lines run by the fake benchmark tools through LocalTransport: the sustain
    really lasts (the fake tools honour --warmup_min_secs and -m duration -t)."""
    from test_runners import FAKE_BENCHMARK_MODEL, FAKE_ORT_PERF_TEST, TinyNet, first_allowed_cpu_mask, wrapper

    import litert_torch

    bins = tmp_path / "bin"
    prof = tmp_path / "fakedev.toml"
    prof.write_text(f"""
name = "fakedev"
human_name = "fake tools"
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
delegates = ["xnnpack", "cpu"]
binary = "{wrapper(bins, FAKE_BENCHMARK_MODEL)}"
[runtimes.onnx]
delegates = ["cpu"]
binary = "{wrapper(bins, FAKE_ORT_PERF_TEST)}"
[thermal]
source = "none"
fixed_pause_s = 0.0
""", encoding="utf-8")
    dev = load_profile(prof)
    model = TinyNet().eval()
    sample = (torch.randn(1, 3, 8, 8),)
    tfl = tmp_path / "tiny.tflite"
    litert_torch.convert(model, sample).export(str(tfl))
    onnx = tmp_path / "tiny.onnx"
    torch.onnx.export(model, sample, str(onnx), dynamo=False)
    for runtime, path in (("tflite", tfl), ("onnx", onnx)):
        runner = create_runner(f"{runtime}-adb", dev, LocalTransport(name="fakedev"))
        t0 = time.perf_counter()
        m = runner.measure(path, runs=3, warmup=1, sustained_s=1.0, cool_down=False)
        assert time.perf_counter() - t0 >= 1.0, runtime
        assert m.runs == 3 and m.extra["sustained_s"] == 1.0


@pytest.mark.slow
def test_sustained_table_is_another_file_and_target(tmp_path, monkeypatch, capsys):
    """End to end on the host: profile --sustained writes its own table; calibrate / validate /
    show reach it only with --sustained; its end-to-end measurements are sustained too."""
    from conftest import run_cli

    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "cache"))
    common = ["-d", "host", "-s", "mbv2", "--runtime", "onnx", "--width", "0.25", "--resolution", "16",
              "--num-classes", "10", "--tables-dir", str(tmp_path / "t")]
    code, out, err = run_cli(["profile", *common, "--sustained", "0.05", "--rounds", "1", "--runs", "5",
                              "--warmup", "1", "--calibrate", "1", "--no-canary"], capsys)
    assert code == 0, err
    path = tmp_path / "t" / "host" / "mbv2-onnx-sustained0.05s.json"
    assert path.exists() and not (tmp_path / "t" / "host" / "mbv2-onnx.json").exists()
    table = LatencyTable.load(path)
    assert table.metadata["sustained_s"] == 0.05 and table.metadata["method"] == "trace"
    assert table.calibration("mbv2@w0.25r16")["n"] == 3  # the calibration replaced the trace's
    store = json.loads(path.with_name(f"{path.stem}.mbv2@w0.25r16.e2e.json").read_text())
    records = [r for r in store.values() if isinstance(r, dict) and "median_ms" in r]  # not the fingerprints
    assert records and all(r["sustained_s"] == 0.05 for r in records)
    code, out, err = run_cli(["lut", "validate", *common, "--sustained", "0.05", "--n", "3", "--no-canary",
                              "--json"], capsys)
    assert code == 0, err and json.loads(out)["table"]["n"] == 3
    code, _, err = run_cli(["lut", "show", "-d", "host", "-s", "mbv2", "--runtime", "onnx",
                            "--tables-dir", str(tmp_path / "t")], capsys)
    assert code == 2 and "mbv2-onnx.json does not exist" in err  # the burst table: never mixed
    code, _, err = run_cli(["lut", "validate", *common, "--sustained", "0.05", "--from-csv", str(path)], capsys)
    assert code == 2 and "--sustained scores the sustained table" in err
    s = tiny_space("mbv2", resolution=16)
    mixed = tmp_path / "t" / "host" / "mbv2-onnx.json"
    mixed.write_text(path.read_text())  # a sustained table under the burst name is refused
    with pytest.raises(HwnasError, match="holds sustained latency after 0.05s, not burst latency"):
        load_table("host", s, "onnx", tmp_path / "t")
    assert table_path("host", "mbv2", "onnx", tmp_path, sustained_s=30).name == "mbv2-onnx-sustained30s.json"


@pytest.mark.slow
def test_sustained_and_op_profiles_over_loopback_adb(tmp_path, tflite_subnet, make_loopback_adbd,  # noqa: F811
                                                     adb_test_key):
    """Over a real ADB connection (the loopback adbd) to the fake benchmark tools: the sustain
    flags reach both tools and really last; the fake benchmark_model's op profile, one row for the
    whole graph as a delegate prints it, is refused for a trace with a one-line error."""
    from test_runners import FAKE_BENCHMARK_MODEL, FAKE_ORT_PERF_TEST

    dev = make_loopback_adbd(sandbox=tmp_path / "device")
    bins = tmp_path / "device" / "hwnas" / "bin"
    bins.mkdir(parents=True)
    for name, tool in (("benchmark_model", FAKE_BENCHMARK_MODEL), ("onnxruntime_perf_test", FAKE_ORT_PERF_TEST)):
        (bins / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" "{tool}" "$@"\n')
        (bins / name).chmod(0o755)
    toml = tmp_path / "loopback.toml"
    toml.write_text(f"""
name = "loopback"
human_name = "Loopback ADB device (test)"
kind = "devkit"
soc = "host CPU"
abi = "native"
remote_work_dir = "/data/local/tmp/hwnas"
[connection]
transport = "adb-shell"
host = "127.0.0.1"
port = {dev.port}
[cpu]
default_threads = 1
cores = "all"
[runtimes.tflite]
delegates = ["xnnpack", "cpu"]
binary = "/data/local/tmp/hwnas/bin/benchmark_model"
[runtimes.onnx]
delegates = ["cpu"]
binary = "/data/local/tmp/hwnas/bin/onnxruntime_perf_test"
[thermal]
source = "none"
fixed_pause_s = 0.0
""")
    profile = load_profile(toml)
    s, genes, tfl = tflite_subnet
    onnx = SubnetModelCache(s, "onnx", tmp_path / "subnets").get(genes)
    for runtime, path, flag in (("tflite", tfl, "--warmup_min_secs=1"), ("onnx", onnx, "-m duration -t 1")):
        transport = profile.open_transport(key_path=adb_test_key, attempts=2, base_delay=0.01, max_delay=0.02)
        runner = create_runner(f"{runtime}-adb", profile, transport)
        t0 = time.perf_counter()
        m = runner.measure(path, runs=3, warmup=1, sustained_s=1.0, cool_down=False)
        assert time.perf_counter() - t0 >= 1.0, runtime
        assert flag in (m.extra.get("sustain_command") or m.extra["command"]) and m.extra["sustained_s"] == 1.0
    runner = create_runner("tflite-adb", profile, profile.open_transport(key_path=adb_test_key))
    m = runner.measure(tfl, runs=3, warmup=1, op_profiling=True, cool_down=False)
    assert [r["node_type"] for r in m.extra["op_profile"]] == ["Invoke"]
    with pytest.raises(HwnasError, match="no profiled node names an op of the subnet \\(node types: Invoke\\)"):
        trace_entries(s, [genes], [m.center_ms], [m.extra["op_profile"]], runs=3)
