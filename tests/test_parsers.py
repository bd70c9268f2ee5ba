"""Parsers on real captured tool output (tests/fixtures/real-outputs, provenance in SOURCES.md).

Every number asserted here is copied from the capture file named in the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hwnas.errors import HwnasError
from hwnas.devices.parsers import (
    adb_error_kind,
    decode_output,
    device_info_from_getprop,
    parse_adb_devices,
    parse_dumpsys_thermalservice,
    parse_getprop,
    parse_thermal_zone_temp,
    parse_time_in_state,
)
from hwnas.runners.benchmark_model import parse_benchmark_model
from hwnas.runners.ort_perf_test import parse_ort_perf_test

FIXTURES = Path(__file__).parent / "fixtures" / "real-outputs"


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def bm(name: str):
    return parse_benchmark_model(read(name), source=name)


def test_every_fixture_is_listed_in_sources_and_tested() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    this_file = Path(__file__).read_text(encoding="utf-8")
    files = sorted(p.name for p in FIXTURES.glob("*.txt"))
    assert len(files) == 40
    for name in files:
        assert f"`{name}`" in sources, f"{name} has no source row"
        assert name in this_file, f"{name} is not tested"


# ---- benchmark_model: new INFO: format -------------------------------------------------------


def test_logcat_prefixed_oppo_a3x_xnnpack() -> None:
    r = bm("benchmark_model-apk-logcat-time-android-oppo-a3x-cpu-xnnpack.txt")
    assert r.timing_source == "summary"
    assert r.avg_us == 244240 and r.count == 10 and r.std_us == 13396
    assert (r.min_us, r.max_us) == (216081, 264534)
    assert (r.p5_us, r.median_us, r.p95_us) == (216081, 245871, 264534)
    assert (r.init_us, r.first_us, r.warmup_avg_us) == (110850, 268586, 259707)
    assert r.warmup is not None and r.warmup.count == 2 and r.warmup.avg_us == 259707
    nodes = r.delegate_nodes[0]
    assert (nodes.delegate, nodes.replaced, nodes.total, nodes.partitions, nodes.subgraph) == (
        "TfLiteXNNPackDelegate", 642, 685, 19, 0)
    assert r.fully_delegated is False
    assert r.param("num threads") == "4" and r.param("Graph") == "/data/local/tmp/yolo26n_fp16.tflite"
    assert (r.memory_kind, r.memory_init_mb, r.memory_overall_mb) == ("delta", 64.8047, 89.4453)
    assert r.session_init_ms == 110.85 and r.model_size_mb == 5.05872
    assert r.delegates_created == ("XNNPACK",)


def test_pixel6_xnnpack_partial_fractional_avg() -> None:
    r = bm("benchmark_model-nightly-android-pixel6-cpu-xnnpack-partial.txt")
    assert r.avg_us == 9212.05 and r.count == 109 and r.std_us == 138
    assert (r.min_us, r.max_us, r.p5_us, r.median_us, r.p95_us) == (8945, 9660, 9057, 9196, 9485)
    assert (r.init_us, r.first_us, r.warmup_avg_us) == (22942, 18763, 13338.4)
    assert r.warmup is not None and r.warmup.count == 38 and r.warmup.max_us == 69346
    d = r.delegate_nodes[0]
    assert (d.replaced, d.total, d.partitions) == (253, 266, 26)
    assert d.fraction == pytest.approx(253 / 266)
    assert r.param("Min warmup runs") == "3"
    assert r.memory_overall_mb == 29.3672


def test_pixel6_nnapi_edgetpu_full_delegation() -> None:
    r = bm("benchmark_model-nightly-android-pixel6-nnapi-edgetpu-full.txt")
    assert r.avg_us == 1076.32 and r.count == 910 and r.median_us == 1017
    assert r.init_us == 787147 and r.session_init_ms == 787.147
    assert r.warmup is not None and r.warmup.count == 455
    assert r.delegate_nodes[0].delegate == "TfLiteNnapiDelegate"
    assert (r.delegate_nodes[0].replaced, r.delegate_nodes[0].total) == (31, 31)
    assert r.delegate_applied[0].delegate == "NNAPI" and r.delegate_applied[0].complete
    assert r.fully_delegated is True
    assert r.param("NNAPI accelerator name") == "google-edgetpu"
    assert any("SL_ANeuralNetworksDiagnostic" in w for w in r.warnings)


def test_pixel6_nnapi_partial_14_kernels() -> None:
    r = bm("benchmark_model-nightly-android-pixel6-nnapi-partial-14-kernels.txt")
    assert r.avg_us == 11447.2 and r.count == 87 and r.init_us == 5473469
    applied = r.delegate_applied[0]
    assert (applied.delegate, applied.complete, applied.kernels) == ("NNAPI", False, 14)
    assert [(d.delegate, d.replaced, d.total, d.partitions) for d in r.delegate_nodes] == [
        ("TfLiteNnapiDelegate", 176, 218, 28), ("TfLiteXNNPackDelegate", 15, 56, 28)]
    assert r.fully_delegated is False
    assert len(r.warnings) == 15
    assert r.delegates_created == ("NNAPI", "XNNPACK")


def test_pixel6_op_profiling_tail_new_layout() -> None:
    r = bm("benchmark_model-nightly-android-pixel6-nnapi-op-profiling-tail.txt")
    assert r.timing_source == "op_profile"
    assert r.avg_us == 1027.36 and r.count == 936 and r.std_us == 73
    assert (r.min_us, r.max_us) == (959, 1518)
    assert r.init_profile is None  # the capture starts after the init tables
    op = r.op_profile
    assert op is not None and op.nodes_executed == 1 and op.nodes_observed == 1
    row = op.run_order[0]
    assert row.start_ms is None  # newer layout: no [start] column
    assert (row.node_type, row.first_ms, row.avg_ms, row.percent, row.times_called) == (
        "TfLiteNnapiDelegate", 1.035, 1.027, 100.0, 1)
    assert row.name == "[MobilenetV1/Predictions/Reshape_1]:31"
    assert op.top_by_time == op.run_order
    summary = op.by_node_type[0]
    assert (summary.node_type, summary.count, summary.avg_ms, summary.avg_percent) == (
        "TfLiteNnapiDelegate", 1, 1.027, 100.0)


def test_pixel6_nnapi_failure_raises_with_tool_lines() -> None:
    name = "benchmark_model-nightly-android-pixel6-error-nnapi-op-failed.txt"
    with pytest.raises(HwnasError) as exc:
        bm(name)
    msg = str(exc.value)
    assert name in msg
    assert "ANEURALNETWORKS_OP_FAILED at line 4768" in msg
    assert "ERROR: Failed to apply NNAPI delegate." in msg
    assert "Benchmarking failed" in msg
    assert "Output began: INFO: STARTING!" in msg  # the first lines the tool printed
    assert "another delegate" in msg


def _sections(text: str) -> dict[str, str]:
    """Split the wrapper script's log at its '### label ###' lines."""
    parts = re.split(r"^### (.+?) ###$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


MULTI_RUN_AVG_US = {
    "efficientdet_lite0_int8 CPU (4 threads)": 9212.05,
    "efficientdet_lite0_int8 NNAPI (nnapi-reference)": 562394,
    "efficientdet_lite0_fp32 CPU XNNPack (4 threads)": 25679.9,
    "mobilenet_v1_quant CPU XNNPack (4T)": 11293,
    "mobilenet_v1_quant NNAPI (edgetpu)": 1076.32,
    "mobilenet_v1_quant NNAPI (auto)": 1073.2,
    "efficientnet_lite0_int8 CPU XNNPack (4T)": 3540.86,
    "efficientnet_lite0_int8 NNAPI (edgetpu)": 1389.89,
    "efficientnet_lite0_fp32 CPU XNNPack (4T)": 10187.4,
    "efficientnet_lite0_fp32 NNAPI (edgetpu, fp16)": 2023.9,
    "yolov8_det (SpotLab fp32) CPU XNNPack (4T)": 102383,
    "yolov8_det NNAPI (nnapi-reference full)": 402153,
    "mobilenet_v1_quant NNAPI (edgetpu) — OP PROFILE": 1027.36,
    "yolo-fastestv2 fp32 CPU XNNPack (4T)": 5744.06,
    "yolo-fastestv2 fp32 NNAPI (edgetpu, fp16)": 11447.2,
    "yolo-fastestv2 fp16 CPU XNNPack (4T)": 7345.17,
    "yolo-fastestv2 fp16 NNAPI (edgetpu, fp16)": 8212.16,
    "yolo-fastestv2 dynamic-range-quant CPU (4T)": 37017.3,
    "whisper-tiny.en FULL graph  CPU XNNPack (4T)": 323849,
    "whisper_enc_tiny_en_fp32 (encoder only)  CPU XNNPack (4T)": 505315,
}
MULTI_RUN_FAILURES = {
    "efficientdet_lite0_int8 NNAPI": "ANEURALNETWORKS_OP_FAILED",
    "efficientdet_lite0_int8 NNAPI (edgetpu accel, allow_fp16)": "Benchmarking failed",
    "efficientdet_lite0_fp32 NNAPI (edgetpu)": "Benchmarking failed",
    "efficientdet_lite0_fp32 NNAPI (auto)": "Benchmarking failed",
    "yolov8_det (SpotLab fp32) NNAPI (edgetpu, fp16)": "Benchmarking failed",
    "yolov8_det (SpotLab fp32) NNAPI (auto, fp16)": "Benchmarking failed",
    "yolov8_det NNAPI (max_delegated_partitions=2)": "Node number 253 (TfLiteNnapiDelegate)",
    "yolo-fastestv2 dynamic-range-quant NNAPI (edgetpu)": "Benchmarking failed",
    "whisper-tiny.en FULL graph  NNAPI edgetpu fp16": "dynamic-sized tensors",
    "whisper_enc_tiny_en_fp32 (encoder only)  NNAPI edgetpu fp16": "ANEURALNETWORKS_MISSED_DEADLINE_TRANSIENT",
}


def test_pixel6_multi_run_script_log_every_section() -> None:
    text = decode_output(read("benchmark_model-nightly-android-pixel6-multi-run-script-log.txt"))
    sections = _sections(text)
    not_benchmark_model = {"whisper-cli (whisper.cpp) baseline on Pixel 6"}
    assert set(sections) - not_benchmark_model == set(MULTI_RUN_AVG_US) | set(MULTI_RUN_FAILURES)
    for label, avg in MULTI_RUN_AVG_US.items():
        assert parse_benchmark_model(sections[label], source=label).avg_us == avg, label
    for label, needle in MULTI_RUN_FAILURES.items():
        with pytest.raises(HwnasError, match=re.escape(needle)):
            parse_benchmark_model(sections[label], source=label)
    # A trimmed section with only a count= line; padded "Replacing 3   out of 11  node(s)" lines.
    whisper = parse_benchmark_model(sections["whisper-tiny.en FULL graph  CPU XNNPack (4T)"])
    assert whisper.count == 10 and whisper.warmup is None and whisper.warmup_avg_us == 335110
    assert [(d.replaced, d.total, d.partitions, d.subgraph) for d in whisper.delegate_nodes] == [
        (487, 500, 4, 0), (3, 11, 2, 2), (3, 5, 2, 6), (305, 356, 5, 8)]
    nnapi_ref = parse_benchmark_model(sections["efficientdet_lite0_int8 NNAPI (nnapi-reference)"])
    assert nnapi_ref.init_us == 7756 and nnapi_ref.median_us == 565947


def test_qualcomm_qrb2210_linux_cpu_and_gpu() -> None:
    cpu = bm("benchmark_model-tf-master-2025-linux-qualcomm-qrb2210-cpu-xnnpack.txt")
    assert cpu.avg_us == 105784 and cpu.count == 50 and cpu.init_us == 87639
    assert (cpu.p5_us, cpu.median_us, cpu.p95_us) == (105485, 105718, 106281)
    assert cpu.param("Use gpu") == "0" and cpu.delegates_created == ("XNNPACK",)
    gpu = bm("benchmark_model-tf-master-2025-linux-qualcomm-qrb2210-gpu-opencl.txt")
    assert gpu.avg_us == 115246 and gpu.std_us == 1329 and gpu.init_us == 1361236
    assert gpu.first_us == 125113 and gpu.warmup_avg_us == 115344
    assert gpu.delegate_applied[0].delegate == "GPU" and gpu.delegate_applied[0].complete
    assert "GPU" in gpu.delegates_created
    assert gpu.memory_init_mb == gpu.memory_overall_mb == 132.816


def test_synaptics_external_delegate_with_stray_line() -> None:
    r = bm("benchmark_model-tf2.15-android-synaptics-external-delegate-timvx.txt")
    assert r.tf_version == "2.15.0"
    assert r.avg_us == 1096.48 and r.count == 876 and r.std_us == 476
    assert r.median_us is None and r.p95_us is None  # this version prints no percentiles
    assert r.warmup is not None and (r.warmup.count, r.warmup.avg_us) == (277, 1760.78)
    d = r.delegate_nodes[0]
    assert (d.delegate, d.replaced, d.total, d.partitions, d.subgraph) == ("Vx Delegate", 31, 31, 1, None)
    assert r.delegate_applied[0].delegate == "EXTERNAL" and r.fully_delegated is True


def test_synaptics_nnapi_warmup_line_with_count_and_curr_only() -> None:
    r = bm("benchmark_model-tf2.15-android-synaptics-nnapi-synap-npu.txt")
    assert r.warmup is not None
    assert (r.warmup.count, r.warmup.curr_us, r.warmup.avg_us, r.warmup.first_us) == (1, 637079, None, None)
    assert r.avg_us == 1885.74 and r.count == 520 and r.std_us == 870
    assert (r.first_us, r.warmup_avg_us, r.init_us) == (637079, 637079, 66002)
    assert r.memory_overall_mb == 7.83203  # the line ends with trailing spaces
    assert r.param("NNAPI accelerator name") == "synap-npu"


# ---- benchmark_model: old bare format ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "avg", "count", "std", "mn", "mx", "init", "first", "warmup", "peak"),
    [
        ("benchmark_model-tf2.4-android-mi11-cpu-fp32.txt",
         249684, 50, 1442, 247067, 254474, 16242, 360262, 304586, (4.92969, 138.809)),
        ("benchmark_model-tf2.4-android-mi11-cpu-int8.txt",
         95788.3, 50, 1284, 93066, 99490, 1779, 152949, 110690, (5.15625, 36.9883)),
        ("benchmark_model-tf2.4-android-mi11-nnapi-qti-gpu-fp16.txt",
         92571.2, 50, 1638, 89745, 96719, 365972, 120877, 108605, (6.90625, 61.0547)),
        ("benchmark_model-tf2.4-android-mi11-nnapi-qti-gpu-fp32.txt",
         156669, 50, 2352, 149738, 161935, 404292, 188086, 175313, (6.80469, 61.0078)),
    ],
)
def test_mi11_tail_only_captures(name, avg, count, std, mn, mx, init, first, warmup, peak) -> None:
    r = bm(name)
    assert (r.avg_us, r.count, r.std_us, r.min_us, r.max_us) == (avg, count, std, mn, mx)
    assert (r.init_us, r.first_us, r.warmup_avg_us) == (init, first, warmup)
    assert r.warmup is None and r.inference is not None
    assert (r.memory_kind, r.memory_init_mb, r.memory_overall_mb) == ("peak", *peak)


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("benchmark_model-tf2.4-android-mi11-error-nnapi-qti-default-op-failed.txt",
         "ANEURALNETWORKS_OP_FAILED at line 3779"),
        ("benchmark_model-tf2.4-android-mi11-error-nnapi-qti-dsp-bad-data.txt",
         "ANEURALNETWORKS_BAD_DATA at line 1068"),
    ],
)
def test_mi11_old_format_nnapi_failures(name: str, needle: str) -> None:
    with pytest.raises(HwnasError) as exc:
        bm(name)
    msg = str(exc.value)
    assert needle in msg and "Failed to apply NNAPI delegate." in msg and "Benchmarking failed" in msg
    assert "Output began: STARTING! | Log parameter values verbosely: [0] | Num threads: [4]" in msg


def test_mi11_nnapi_op_profiling_tables() -> None:
    r = bm("benchmark_model-tf2.4-android-mi11-nnapi-op-profiling.txt")
    assert r.timing_source == "op_profile" and r.avg_us == 158715 and r.count == 50
    assert (r.std_us, r.min_us, r.max_us) == (2931, 146535, 166638)
    init = r.init_profile
    assert init is not None and init.timings is not None and init.timings.curr_us == 729391
    first = init.run_order[0]
    assert (first.node_type, first.start_ms, first.first_ms, first.avg_ms, first.mem_kb) == (
        "ModifyGraphWithDelegate", 0.0, 413.346, 413.346, 1748.0)
    assert init.run_order[1].times_called == 2
    op = r.op_profile
    assert op is not None
    assert (len(op.run_order), len(op.top_by_time), len(op.by_node_type), op.nodes_executed) == (11, 10, 3, 11)
    big = op.run_order[6]
    assert (big.node_type, big.start_ms, big.avg_ms, big.percent, big.cdf_percent) == (
        "TfLiteNnapiDelegate", 8.377, 79.010, 49.781, 55.042)
    assert big.name == "[model/tf.nn.silu_16/mul, model/tf.nn.silu_26/mul, model/tf.nn.silu_35/mul]:231"
    # the per-op averages add up to the per-run total the profiler reports
    assert sum(row.avg_ms for row in op.run_order) == pytest.approx(158.716, abs=1e-6)
    assert sum(row.avg_ms for row in op.run_order) == pytest.approx(r.avg_us / 1000, rel=1e-3)
    nnapi = op.by_node_type[0]
    assert (nnapi.node_type, nnapi.count, nnapi.avg_ms, nnapi.avg_percent, nnapi.times_called) == (
        "TfLiteNnapiDelegate", 3, 149.483, 94.187, 3)


def test_poco_x3_cpu_full_log_with_old_key_value_header() -> None:
    r = bm("benchmark_model-tf2.4dev-android-poco-x3-cpu-2threads-op-profiling.txt")
    assert r.avg_us == 17138 and r.count == 58 and r.std_us == 58 and r.init_us == 746
    assert r.warmup is not None and (r.warmup.count, r.warmup.avg_us) == (27, 18851.5)
    assert r.param("Num threads") == "2" and r.param("use xnnpack") == "0" and r.param("Use gpu") == "0"
    assert r.param("Hexagon lib path") == "/data/local/tmp"
    assert "Duplicate flags: num_threads" in r.warnings
    assert (r.memory_kind, r.memory_overall_mb) == ("peak", 15.7461)
    op = r.op_profile
    assert op is not None and len(op.run_order) == 77 and op.nodes_executed == 77
    assert op.run_order[1].name == "[model/expanded_conv/depthwise/pad/Pad]:1"
    assert [(n.node_type, n.count, n.avg_ms) for n in op.by_node_type] == [
        ("CONV_2D", 36, 8.695), ("RESIZE_BILINEAR", 5, 4.809), ("DEPTHWISE_CONV_2D", 19, 2.646),
        ("ADD", 13, 0.517), ("PAD", 4, 0.396)]
    assert sum(n.count for n in op.by_node_type) == 77
    assert op.timings is not None and op.timings.avg_us == 17101.5


def test_poco_x3_gpu_delegate_old_wording() -> None:
    r = bm("benchmark_model-tf2.4dev-android-poco-x3-gpu-op-profiling.txt")
    assert r.avg_us == 8680.33 and r.count == 110 and r.init_us == 1451507
    assert r.param("Use gpu") == "1"
    assert r.delegate_applied[0].delegate == "GPU" and r.delegate_applied[0].complete
    assert r.init_profile is not None and r.init_profile.run_order[0].mem_kb == 62364.0
    row = r.op_profile.run_order[0] if r.op_profile else None
    assert row is not None and (row.node_type, row.name, row.avg_ms) == ("TfLiteGpuDelegateV2", "[Identity]:77", 8.671)


def test_qemu_riscv_scientific_notation() -> None:
    r = bm("benchmark_model-tf2.8-linux-qemu-riscv64-cpu-op-profiling.txt")
    assert r.avg_us == 2950340.0 and r.warmup_avg_us == 3512390.0  # 2.95034e+06, 3.51239e+06
    assert (r.first_us, r.count, r.std_us, r.min_us, r.max_us) == (3512391, 50, 109798, 2727568, 3189954)
    assert r.warmup is not None and (r.warmup.count, r.warmup.curr_us) == (1, 3512391)
    assert r.session_init_ms == 17.187 and r.model_size_mb == 16.9008
    assert (r.memory_kind, r.memory_init_mb, r.memory_overall_mb) == ("delta", 4.21094, 46.0859)
    op = r.op_profile
    assert op is not None and op.timings is not None and op.timings.avg_us == 2949900.0  # 2.9499e+06
    first = op.run_order[0]
    assert (first.node_type, first.start_ms, first.first_ms, first.avg_ms) == ("CONV_2D", 0.066, 87.754, 60.957)
    assert len(op.run_order) == 31
    assert (op.by_node_type[0].node_type, op.by_node_type[0].count, op.by_node_type[0].avg_ms) == (
        "CONV_2D", 15, 2651.853)


def test_tflite_readme_old_average_line_and_tables_without_section_title() -> None:
    r = bm("benchmark_model-tflite-readme-android-op-profiling-old-avg-format.txt")
    assert r.timing_source == "summary"
    assert (r.avg_us, r.warmup_avg_us, r.init_us) == (79760.9, 83235, 38467)
    assert r.count is None and r.std_us is None
    op = r.op_profile
    assert op is not None and len(op.run_order) == 31 and len(op.top_by_time) == 10
    assert all(row.times_called == 0 for row in op.run_order)
    assert op.run_order[2].start_ms == 6.421 and op.run_order[2].avg_ms == 6.107
    assert op.timings is not None and op.timings.avg_us == 79732
    assert (op.by_node_type[0].node_type, op.by_node_type[0].count) == ("CONV_2D", 15)


def test_benchmark_model_without_timing_lines_raises_with_first_lines() -> None:
    head = read("benchmark_model-nightly-android-pixel6-cpu-xnnpack-partial.txt").decode().splitlines()[:8]
    with pytest.raises(HwnasError, match=r"no timing lines.*Output began: INFO: STARTING!"):
        parse_benchmark_model("\n".join(head), source="truncated")
    with pytest.raises(HwnasError, match=r"\(no output\)"):
        parse_benchmark_model("")


def test_crlf_and_threadtime_logcat_prefix() -> None:
    text = ("07-08 15:37:35.254  6071  6071 I tflite  : count=3 first=10 curr=11 min=9 max=12 avg=10.5 std=1\r\n"
            "07-08 15:37:35.254  6071  6071 I tflite  : Inference timings in us: Init: 5, First inference: 10, "
            "Warmup (avg): 10, Inference (avg): 10.5\r\n")
    r = parse_benchmark_model(text.encode())
    assert (r.avg_us, r.count, r.min_us, r.max_us, r.init_us) == (10.5, 3, 9, 12, 5)


# ---- onnxruntime_perf_test --------------------------------------------------------------------


def test_ort_pixel6_older_wording_no_first_inference() -> None:
    r = parse_ort_perf_test(read("onnxruntime_perf_test-android-pixel6-cpu-1thread.txt"))
    assert r.avg_ms == 19.918 and r.runs == 100 and r.first_inference_ms is None
    assert (r.min_ms, r.max_ms) == (19.7812, 20.2704)
    assert r.percentiles_ms == {"p50": 19.9047, "p90": 20.0251, "p95": 20.1534, "p99": 20.2704,
                                "p999": 20.2704}
    assert r.intra_op_threads == 1 and r.inferences_per_s == 50.2002
    assert r.avg_cpu_percent == 12 and r.peak_working_set_bytes == 109531136
    assert r.session_creation_s == 0.0508382 and r.total_time_s == 1.9918


@pytest.mark.parametrize(
    ("name", "avg", "runs", "first", "mn", "mx", "p50", "threads"),
    [
        ("onnxruntime_perf_test-android-vivo-x300-cpu-kleidiai-sme2.txt",
         98.961997, 5, 196, 95.8204, 101.519, 99.5086, 1),
        ("onnxruntime_perf_test-android-vivo-x300-cpu-no-sme2.txt",
         339.381120, 5, 343, 333.323, 346.82, 336.476, 1),
        ("onnxruntime_perf_test-linux-riscv64-spacemit-k1-spacemit-ep-4threads.txt",
         82.3382, 10, 248, 80.8129, 83.8817, 82.6095, 4),
        ("onnxruntime_perf_test-2.0.6-linux-riscv64-spacemit-k1-spacemit-ep-avg-total.txt",
         7.270205, 10, 109, 7.20383, 7.30163, 7.27787, 1),
    ],
)
def test_ort_both_average_wordings(name, avg, runs, first, mn, mx, p50, threads) -> None:
    r = parse_ort_perf_test(read(name), source=name)
    assert (r.avg_ms, r.runs, r.first_inference_ms) == (pytest.approx(avg), runs, first)
    assert (r.min_ms, r.max_ms, r.p50_ms) == (pytest.approx(mn), pytest.approx(mx), pytest.approx(p50))
    assert r.intra_op_threads == threads
    assert r.min_ms <= r.avg_ms <= r.max_ms


def test_ort_spacemit_provider_banner_lines() -> None:
    r = parse_ort_perf_test(read("onnxruntime_perf_test-2.0.6-linux-riscv64-spacemit-k1-spacemit-ep-avg-total.txt"))
    assert r.provider_lines == ("using SpaceMITExecutionProvider", "setting SPACEMIT_EP_INTRA_THREAD_NUM : 4")
    assert r.peak_working_set_bytes == 91336704 and r.session_creation_s == 0.169475


def test_ort_without_average_raises_with_first_lines() -> None:
    head = "\n".join(read("onnxruntime_perf_test-android-vivo-x300-cpu-no-sme2.txt").decode().splitlines()[:3])
    with pytest.raises(HwnasError, match=r"no 'Average inference time cost'.*Setting intra_op_num_threads to 1"):
        parse_ort_perf_test(head, source="device")


# ---- getprop ---------------------------------------------------------------------------------


def test_getprop_poco_f6_full_dump_and_multiline_value() -> None:
    props = parse_getprop(read("getprop-poco-f6-sm8635-pineapple-full.txt"))
    assert len(props) == 1067
    assert props["persist.sys.boot.reason.history"] == (
        "reboot,,1745935181\nshutdown,userrequested,1745815614\nreboot,,1745768086\nreboot,,1745686927")
    info = device_info_from_getprop(props)
    assert (info.model, info.manufacturer, info.soc_model, info.soc_manufacturer) == (
        "24069PC21I", "Xiaomi", "SM8635", "QTI")
    assert (info.board_platform, info.abi, info.sdk, info.android_release) == ("pineapple", "arm64-v8a", 35, "15")
    assert info.serial == "f89a5ec6"


def test_getprop_samsung_utf16le_crlf() -> None:
    data = read("getprop-samsung-galaxy-s25plus-sm-s936b-sm8750-full-utf16le-crlf.txt")
    assert data[:2] == b"\xff\xfe"
    props = parse_getprop(data)
    assert len(props) == 1582
    assert not any("\r" in k or "\r" in v or "\x00" in v for k, v in props.items())
    info = device_info_from_getprop(props)
    assert (info.model, info.soc_model, info.board_platform, info.sdk, info.android_release) == (
        "SM-S936B", "SM8750", "sun", 36, "16")
    assert info.manufacturer == "samsung" and info.serial == "R5CY743GDFY"
    assert props["persist.sys.boot.reason.history"].splitlines()[-1] == "reboot,lpm,1784545284"
    # without the BOM the heuristic still finds UTF-16LE
    assert parse_getprop(data[2:])["ro.soc.model"] == "SM8750"


@pytest.mark.parametrize(
    ("name", "count", "model", "platform", "hardware", "sdk"),
    [
        ("getprop-lg-v60-lm-v600-kona-android11-full.txt", 1158, "LM-V600", "kona", "timelm", 30),
        ("getprop-oneplus-nord-n10-be2028-lito-android11-full.txt", 1120, "BE2028", "lito", "qcom", 30),
    ],
)
def test_getprop_android11_without_soc_model(name, count, model, platform, hardware, sdk) -> None:
    props = parse_getprop(read(name))
    assert len(props) == count
    info = device_info_from_getprop(props)
    assert (info.model, info.board_platform, info.hardware, info.sdk) == (model, platform, hardware, sdk)
    assert info.soc_model is None and info.soc_manufacturer is None


def test_getprop_xiaomi_12s_excerpts() -> None:
    board = parse_getprop(read("getprop-xiaomi-12s-sm8475-taro-excerpt-ro.board.txt"))
    assert board == {"ro.board.api_level": "31", "ro.board.first_api_level": "31", "ro.board.platform": "taro"}
    soc = parse_getprop(read("getprop-xiaomi-12s-sm8475-taro-excerpt-ro.soc.txt"))
    assert (soc["ro.soc.model"], soc["ro.soc.manufacturer"], soc["ro.sf.lcd_density"]) == ("SM8475", "QTI", "440")
    product = parse_getprop(read("getprop-xiaomi-12s-sm8475-taro-excerpt-ro.product.txt"))
    assert len(product) == 73
    assert product["ro.product.model"] == "2206123SC" and product["ro.product.marketname"] == "Xiaomi 12S"
    assert product["ro.product.cpu.abi"] == "arm64-v8a" and product["ro.product.board"] == "taro"
    assert product["ro.product.product.cert"] == ""  # empty value "[]"


# ---- adb client output -----------------------------------------------------------------------


def test_adb_devices_long_authorized() -> None:
    devices = parse_adb_devices(read("adb-devices-l-onda-v10-pro-authorized.txt"))
    assert len(devices) == 1
    d = devices[0]
    assert (d.serial, d.state, d.ready, d.model) == ("0123456789ABCDEF", "device", True, "V10_Pro")
    assert d.details == {"usb": "3-1", "product": "ONDA", "model": "V10_Pro", "device": "V10_Pro",
                         "transport_id": "3"}


def test_adb_devices_unauthorized_both_forms() -> None:
    long_form = parse_adb_devices(read("adb-devices-l-unauthorized.txt"))
    assert [(d.serial, d.state, d.ready, d.model) for d in long_form] == [
        ("0123456789ABCDEF", "unauthorized", False, None)]
    assert long_form[0].details == {"usb": "3-1", "transport_id": "3"}
    short = parse_adb_devices(read("adb-devices-unauthorized.txt"))
    assert [(d.serial, d.state, dict(d.details)) for d in short] == [("0123456789ABCDEF", "unauthorized", {})]


def test_adb_error_unauthorized_shell() -> None:
    assert adb_error_kind(read("adb-error-device-unauthorized-shell.txt")) == "unauthorized"
    assert adb_error_kind("adb: device offline") == "offline"
    assert adb_error_kind("error: no devices/emulators found") == "no-device"
    assert adb_error_kind("hello") is None


# ---- thermal and cpufreq ---------------------------------------------------------------------


def test_dumpsys_thermalservice_aidl_hal() -> None:
    dump = parse_dumpsys_thermalservice(read("dumpsys-thermalservice-android-xiaomi-snapdragon-aidl-hal.txt"))
    assert dump.status == 0
    assert len(dump.cached) == 26 and len(dump.current) == 26
    assert dump.readings == dump.current
    assert dump.temperature("CPU") == 35.8  # hottest current CPU sensor (CPU1)
    assert dump.temperature("GPU") == 34.7
    assert dump.temperature("battery") == 31.2  # by sensor name
    assert dump.temperature("CPU7") == 35.4
    assert dump.temperature("SKIN") is None
    assert max(r.value for r in dump.cached if r.type_name == "CPU") == 89.5
    ibat = next(r for r in dump.current if r.name == "ibat")
    assert (ibat.value, ibat.type_name, ibat.is_temperature) == (-1.125, "BCL_CURRENT", False)


def test_thermal_zone_millidegrees() -> None:
    assert parse_thermal_zone_temp("45200\n") == 45.2
    assert parse_thermal_zone_temp(b"-5000") == -5.0
    assert parse_thermal_zone_temp("45") == 45.0
    with pytest.raises(HwnasError, match="millidegrees"):
        parse_thermal_zone_temp("cat: /sys/class/thermal/thermal_zone9/temp: No such file", source="zone9")


def test_cpufreq_time_in_state_four_policies() -> None:
    tables = parse_time_in_state(read("cpufreq-time_in_state-per-policy-android-xiaomi-snapdragon.txt"))
    assert list(tables) == ["cpu0", "cpu2", "cpu5", "cpu7"]
    assert [len(v) for v in tables.values()] == [18, 32, 29, 35]
    assert {k: max(f for f, _ in v) for k, v in tables.items()} == {
        "cpu0": 2265600, "cpu2": 3148800, "cpu5": 2956800, "cpu7": 3302400}
    assert tables["cpu0"][2] == (556800, 165881)
