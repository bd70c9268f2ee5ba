"""Quantized exports (int8 TFLite via PT2E, ONNX QDQ) with real converters and runtimes, the
``hwnas export --quant`` CLI, and int8 latency profiling (runtime ``tflite`` at precision ``int8``)."""

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from hwnas.errors import HwnasError
from hwnas.export import read_onnx_metadata
from hwnas.quant.export import (
    check_quant_request,
    deployable,
    export_quantized,
    layer_bits,
    metadata_bits,
    onnx_weight_levels,
    parse_bits,
)
from hwnas.spaces import create_space
from hwnas.supernet import Subnet, recalibrate_bn

RES = 16



@pytest.fixture(scope="module")
def digits():
    from hwnas.data import load_data, take_batches

    d = load_data("digits", resolution=RES, in_channels=3)
    return (take_batches(d.train_clean, 64, max_batches=12, seed=0), take_batches(d.test, 64, max_batches=2))


MP_GENES = (1, 1, 2, 5, 0, 0, 1, 3, 1, 4, 2, 2, 1, 5, 0, 1)  # w2a2 w4a4 w1a2 w2a4 w3a4 w1a4 w4a4 w2a2


def train_mp_subnet(train, steps=48):
    """A resnet18-mp subnet with mixed bits (w1..w4, a2/a4) trained briefly on digits."""
    torch.manual_seed(0)
    s = create_space("resnet18-mp", width=0.25, resolution=RES, num_classes=10)
    sub = Subnet(s, MP_GENES)
    opt = torch.optim.SGD(sub.parameters(), lr=0.05, momentum=0.9)
    sub.train()
    for step in range(steps):
        x, y = train[step % len(train)]
        loss = torch.nn.functional.cross_entropy(sub(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    recalibrate_bn(sub, train[:4])
    return s, MP_GENES, sub.eval()


@pytest.fixture(scope="module")
def trained_mp_subnet(digits):
    torch.set_num_threads(1)
    return train_mp_subnet(digits[0])


def conv_filters(interpreter) -> list[int]:
    """Tensor indices of the filters of the (depthwise) convolutions of a TFLite model."""
    return [op["inputs"][1] for op in interpreter._get_ops_details()
            if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]


@pytest.mark.slow
def test_mixed_export_tflite_and_onnx_qdq(trained_mp_subnet, digits, tmp_path):
    s, genes, sub = trained_mp_subnet
    train, test = digits
    results = export_quantized(sub, tmp_path, quant="mixed", formats=("onnx", "tflite"), calib=train[:1],
                               eval_batches=test, resolution=RES, metadata=sub.metadata())
    assert [r.format for r in results] == ["onnx", "tflite"]
    specs = sub.specs
    for r in results:
        # parity with the deployable torch model and a real, small accuracy drop
        assert r.n_images == 128
        assert r.float_accuracy > 0.5, r  # the model learned something: the comparison means something
        assert r.top1_agreement >= 0.9, r
        assert abs(r.accuracy_drop) <= 8.0, r
        assert r.max_abs_diff <= 0.25 * r.logit_range, r  # logits within a quarter of their range
        assert r.fake_quant_accuracy is not None
        # the searched per-layer bits are stored in the model metadata
        bits = metadata_bits(r)
        assert [(b["w_bits"], b["a_bits"]) for b in bits] == [(sp.w_bits, sp.a_bits) for sp in specs]
        assert bits[0]["w_bits"] == 32 and bits[-1]["op"] == "linear"
    onnx_path, tflite_path = (tmp_path / "model.mixed.onnx"), (tmp_path / "model.mixed.tflite")
    proto = onnx.load(str(onnx_path))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    meta = read_onnx_metadata(onnx_path)
    assert meta["genes"] == list(genes) and meta["quant"] == "mixed" and "int8" in meta["runtime_precision"]
    # the int8 weights of layer i take at most 2^k distinct values (k = its searched w_bits)
    levels = onnx_weight_levels(onnx_path)
    checked = 0
    for i, spec in enumerate(specs):
        if spec.op != "basic":
            continue
        for conv in ("conv1", "conv2", "shortcut_conv"):
            key = f"ops.{i}.{conv}.weight"
            if key in levels:
                assert levels[key] <= 2 ** spec.w_bits, (key, spec.w_bits, levels[key])
                assert levels[key] == (2 if spec.w_bits == 1 else 2 ** spec.w_bits - 1), key
                checked += 1
    assert checked == 19  # 16 block convs + 3 shortcut convs
    assert levels["ops.0.conv.weight"] > 16  # the full-precision stem really uses the int8 range
    # the TFLite model is fully int8: int8 input and int8 conv weights
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tflite_path))
    assert it.get_input_details()[0]["dtype"] == np.int8
    weights = conv_filters(it)
    assert len(weights) >= 19 and all(it.get_tensor(i).dtype == np.int8 for i in weights)
    side = json.loads((tmp_path / "model.mixed.tflite.json").read_text())
    assert side["layer_bits"] == meta["layer_bits"]


def test_deployable_bakes_weights_and_keeps_the_clip(trained_mp_subnet):
    _, _, sub = trained_mp_subnet
    dep = deployable(sub)
    block = dep.ops[1]
    assert block.deploy and not sub.ops[1].deploy  # the original is untouched
    w = block.conv1.weight
    scale = w.abs().amax((1, 2, 3), keepdim=True) / 1  # w_bits 2: levels -1, 0, 1
    assert torch.allclose(w / scale, (w / scale).round(), atol=1e-5)
    x = torch.randn(4, 3, RES, RES)
    with torch.no_grad():
        a, b = sub(x), dep(x)
    assert (a - b).abs().max() > 0  # activations are no longer rounded ...
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.5  # ... but it is the same network


def test_int8_and_bits_override_on_a_full_precision_space(digits, tmp_path):
    """--quant int8 of an fp32 space (plain PTQ) and --quant mixed --bits 4,8 on it (ONNX only)."""
    train, test = digits
    s = create_space("mbv2", width=0.25, resolution=RES, num_classes=10)
    torch.manual_seed(0)
    sub = Subnet(s, s.smallest()).eval()
    recalibrate_bn(sub, train[:2])
    (r8,) = export_quantized(sub, tmp_path, quant="int8", formats=("onnx",), calib=train[:1],
                             eval_batches=test[:1], resolution=RES)
    assert r8.path.endswith("model.qdq.onnx") and r8.max_abs_diff is not None
    lv8 = onnx_weight_levels(r8.path)
    (r4,) = export_quantized(sub, tmp_path, quant="mixed", formats=("onnx",), calib=train[:1],
                             eval_batches=test[:1], resolution=RES, bits=(4, 8))
    lv4 = onnx_weight_levels(r4.path)
    block_keys = [k for k in lv4 if k.split(".")[1] not in ("0", "1") and "project_conv" in k]
    assert block_keys and all(lv4[k] <= 15 for k in block_keys)
    assert max(lv8[k] for k in block_keys) > 15  # without --bits the int8 range is used
    assert read_onnx_metadata(r4.path)["bits_override"] == [4, 8]
    rows = read_onnx_metadata(r4.path)["layer_bits"]
    assert {(r["w_bits"], r["a_bits"]) for r in rows if r["block"] >= 0} == {(4, 8)}
    assert {(r["w_bits"], r["a_bits"]) for r in rows if r["block"] < 0} == {(32, 32)}


def test_quant_request_errors(tmp_path, digits):
    with pytest.raises(HwnasError, match="unknown quantization 'int4'; allowed: int8, mixed"):
        check_quant_request("int4", ("onnx",))
    with pytest.raises(HwnasError, match="format 'coreml' has no quantized export path"):
        check_quant_request("int8", ("coreml",))
    with pytest.raises(HwnasError, match="weight bits 16 cannot run on the int8 runtimes"):
        parse_bits("16,8")
    with pytest.raises(HwnasError, match="activation bits 32 cannot run"):
        parse_bits("4,32")
    with pytest.raises(HwnasError, match="W,A"):
        parse_bits("4")
    with pytest.raises(HwnasError, match="applies to --quant mixed only"):
        check_quant_request("int8", ("onnx",), (4, 4))
    s = create_space("mbv2", width=0.25, resolution=RES, num_classes=10)
    sub = Subnet(s, s.smallest())
    assert all(r["w_bits"] == 32 for r in layer_bits(sub))
    with pytest.raises(HwnasError, match="full precision .* pass --bits W,A or use --quant int8"):
        export_quantized(sub, tmp_path, quant="mixed", formats=("onnx",), calib=digits[0][:1], resolution=RES)
    assert not list(tmp_path.iterdir())  # nothing written


def test_cli_export_quant(tmp_path, capsys):
    """``hwnas export --quant mixed`` end to end (ONNX), and its errors (one line, exit code 2)."""
    from conftest import run_cli

    def run(args):
        return run_cli(args, capsys)

    genes = ",".join(map(str, MP_GENES))
    common = ["export", "-s", "resnet18-mp", "--width", "0.25", "--resolution", "16", "--num-classes", "10",
              "-g", genes, "-o", str(tmp_path)]
    code, out, err = run([*common, "--format", "onnx", "--quant", "mixed", "--calib-images", "32"])
    assert code == 0, err
    assert "mixed export" in out and "resnet18-mp" in out
    report = json.loads((tmp_path / "model.mixed.export.json").read_text())
    r = report["results"][0]
    assert r["n_images"] == 270 and report["data"] == "digits" and r["format"] == "onnx"
    assert r["accuracy"] is not None and 0 <= r["top1_agreement"] <= 1
    assert (tmp_path / "model.mixed.onnx").is_file()
    code, _, err = run([*common, "--quant", "mixed", "--bits", "16,16"])
    assert code == 2 and err.strip() == ("error: --bits 16,16: weight bits 16 cannot run on the int8 "
                                         "runtimes (onnxruntime, TFLite); allowed: 1..8")
    code, _, err = run([*common, "--quant", "int4"])
    assert code == 2 and "use none, int8 or mixed" in err
    code, _, err = run(["export", "-s", "mbv2", "--width", "0.25", "--resolution", "16", "--num-classes", "10",
                        "-g", ",".join(["0"] * 21), "-o", str(tmp_path / "fp"), "--quant", "mixed"])
    assert code == 2 and "pass --bits W,A" in err


@pytest.mark.slow
def test_tflite_int8_latency_runtime(tmp_path, monkeypatch):
    """Runtime ``tflite`` at precision ``int8``: int8 one-op models, the host runner, a 1-key profile,
    and the legacy name ``tflite-int8`` mapped to the same table."""
    from hwnas.devices.profiles import load_profile
    from hwnas.latency.keys import space_ops
    from hwnas.latency.opmodels import OpModelCache
    from hwnas.latency.profile import ProfileConfig, plan_profile, profile_device
    from hwnas.runners.registry import create_runner, default_runner_name

    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "cache"))
    s = create_space("mbv2-mp", width=0.35, resolution=32, num_classes=10)
    profile = load_profile("host")
    assert default_runner_name(profile, "tflite", "int8") == "tflite-host"
    cfg = ProfileConfig(runtime="tflite", precision="int8", warmup=2, runs=5, max_keys=1, cool_down=False)
    assert ProfileConfig(runtime="tflite-int8") == replace(cfg, warmup=10, runs=50, max_keys=None, cool_down=True)
    plan = plan_profile(profile, s, cfg, tmp_path / "tables")
    assert len(plan.keys) == 1 and plan.estimate_s > 0
    ops = space_ops(s)
    key = next(k for k in ops if k.startswith("qmbconv") and k.endswith("w4a4"))
    cache = OpModelCache("tflite", tmp_path / "cache", precision="int8")
    assert cache.dir == tmp_path / "cache" / "tflite-int8"  # the cache folder of older versions
    path = cache.get(key, ops[key])
    assert path.suffix == ".tflite"
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    assert it.get_input_details()[0]["dtype"] == np.int8
    filters = conv_filters(it)
    assert len(filters) == 3  # expand, depthwise, project
    for i in filters:  # 4-bit weights in int8 containers
        w = it.get_tensor(i)
        assert w.dtype == np.int8 and 3 <= np.unique(w).size <= 15
    m = create_runner("tflite-host", profile).measure(path, warmup=2, runs=5, cool_down=False)
    assert m.runtime == "tflite" and m.runner == "tflite-host" and m.median_ms > 0
    table = profile_device(profile, s, cfg, tables_dir=tmp_path / "tables", cache=cache)
    assert (table.metadata["runtime"], table.metadata["precision"]) == ("tflite", "int8")
    assert len(table.entries) == 1 and table.path.name == "mbv2-mp-tflite-int8.json"
