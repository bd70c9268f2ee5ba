"""Deployment end to end: a quick-start supernet -> ``hwnas finetune`` -> ``hwnas bundle`` (float and
full-integer int8) -> ``hwnas verify`` on the loopback ADB device with the host stand-in of
``benchmark_model``; the TFLite Model Metadata read back by MediaPipe Tasks (an independent reader);
zero float compute ops in the int8 graph; BN recalibration on export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from conftest_adb import adb_test_key, make_loopback_adbd  # noqa: F401
from hwnas.deploy import tflite_file
from hwnas.deploy.bundle import CARD_JSON, CARD_MD, CHECKSUMS, read_bundle
from hwnas.errors import HwnasError

REPO = Path(__file__).resolve().parents[1]
FAKE_BENCHMARK_MODEL = REPO / "tools" / "fake_benchmark_model.py"
#: a quick-start (mbv2, width 0.35, 32 px) subnet with three residual blocks (layers 1, 5, 9)
pytestmark = pytest.mark.slow  # conversions and training: ~70 s on a quiet 2-core machine

GENES = "0,0,6,6,0,0,6,6,0,0,6,6,6,6,6,6,0,6,6,6,0"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="module")
def supernet(work) -> Path:
    """A supernet trained by the quick start's train step (tiny settings)."""
    from rich.console import Console

    from hwnas.quickstart import QuickstartConfig, step_train

    torch.manual_seed(0)
    cfg = replace(QuickstartConfig(), epochs=1, steps_per_epoch=4, batch_size=32)
    return Path(step_train(cfg, work / "qs", Console(quiet=True))["checkpoint"])


@pytest.fixture(scope="module")
def tables(work) -> Path:
    """Latency tables: the shipped host table, also as the loopback device's (it runs on this host)."""
    from hwnas.latency.table import default_table_dir

    root = work / "tables"
    for device in ("host", "loop"):
        (root / device).mkdir(parents=True)
        shutil.copy(default_table_dir() / "host" / "mbv2-tflite.json", root / device / "mbv2-tflite.json")
    return root


@pytest.fixture(scope="module")
def finetuned(supernet, work, capsys_module) -> Path:
    code, out, err = capsys_module(["finetune", "-c", str(supernet), "-g", GENES, "-o", str(work / "ft"),
                                    "--epochs", "1", "--batch-size", "48", "--lr", "0.1"])
    assert code == 0, err
    assert "fine-tuned 26 steps" in out
    return work / "ft" / "finetune.pt"


@pytest.fixture(scope="module")
def capsys_module():
    """run_cli for module fixtures (capsys is function-scoped): capture with capfd-free redirection."""
    import contextlib
    import io

    def run(args):
        o, e = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
            from hwnas.cli import main

            try:
                main(args)
                code = 0
            except SystemExit as exc:
                code = exc.code
        return code, o.getvalue(), e.getvalue()

    return run


@pytest.fixture(scope="module")
def bundle_float(finetuned, work, tables, capsys_module) -> Path:
    out = work / "bundle"
    code, text, err = capsys_module(["bundle", "-c", str(finetuned), "-o", str(out), "--tables-dir", str(tables),
                                     "--version", "1.2.0"])
    assert code == 0, err
    assert "top-1 agreement" in text
    return out


@pytest.fixture(scope="module")
def bundle_int8(finetuned, work, capsys_module) -> Path:
    out = work / "bundle8"
    out.mkdir()
    (out / "old.txt").write_text("something else")
    code, _, err = capsys_module(["bundle", "-c", str(finetuned), "-o", str(out), "--quant", "int8",
                                  "--format", "tflite", "--calib-images", "128"])
    assert code == 2 and "already holds 1 entries (old.txt)" in err and "--force" in err
    assert (out / "old.txt").read_text() == "something else"  # nothing overwritten
    code, _, err = capsys_module(["bundle", "-c", str(finetuned), "-o", str(out), "--quant", "int8",
                                  "--format", "tflite", "--calib-images", "128", "--force"])
    assert code == 0, err
    assert not (out / "old.txt").exists()
    return out


def _digit_image(card) -> tuple[np.ndarray, np.ndarray]:
    """A test image of the bundle's dataset as RGB pixels (H, W, 3) uint8 and as the normalized NCHW."""
    from hwnas.data import load_data

    d = load_data(card["data"]["name"], resolution=card["space"]["resolution"])
    x = d.test[0][0].numpy()
    mean, std = np.asarray(d.mean).reshape(3, 1, 1), np.asarray(d.std).reshape(3, 1, 1)
    pixels = np.clip(np.round((x * std + mean) * 255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels.transpose(1, 2, 0)), ((pixels / 255.0 - mean) / std)[None].astype(np.float32)


def _mediapipe_classify(model: Path, pixels: np.ndarray):
    import mediapipe as mp
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import image_classifier as ic

    options = ic.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(model)), max_results=10)
    with ic.ImageClassifier.create_from_options(options) as classifier:
        result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels))
    return {c.category_name: c.score for c in result.classifications[0].categories}


def _host_scores(model: Path, card, x: np.ndarray) -> np.ndarray:
    from hwnas.deploy.app import run_app_tflite
    from hwnas.deploy.metadata import ModelFacts

    inp = card["model"]["input"]
    facts = ModelFacts(name="x", version="1", description="", labels=tuple(map(str, range(10))),
                       mean=tuple(inp["mean"]), std=tuple(inp["std"]), height=32, width=32,
                       input=inp["dtype"] if inp["dtype"] != "float32" else "float")
    return run_app_tflite(model, x, facts)[0]


def test_app_ready_tflite_read_back_by_mediapipe(bundle_float):
    """NHWC float input named ``image``, ``probabilities`` out, signature ``classify``; MediaPipe's
    ImageClassifier applies the metadata's normalization and labels and gets the host scores."""
    from ai_edge_litert.interpreter import Interpreter
    from mediapipe.tasks.metadata import metadata_schema_py_generated as ms

    model = bundle_float / "model.tflite"
    card = json.loads((bundle_float / CARD_JSON).read_text())
    it = Interpreter(model_path=str(model))
    assert it.get_signature_list() == {"classify": {"inputs": ["image"], "outputs": ["probabilities"]}}
    (inp,), (outp,) = it.get_input_details(), it.get_output_details()
    assert (inp["name"], list(inp["shape"]), inp["dtype"]) == ("image", [1, 32, 32, 3], np.float32)
    assert (outp["name"], list(outp["shape"])) == ("probabilities", [1, 10])
    # metadata, parsed with MediaPipe's copy of the official generated schema code
    buf = tflite_file.read_metadata_buffer(model.read_bytes())
    meta = ms.ModelMetadataT.InitFromObj(ms.ModelMetadata.GetRootAs(buf, 0))
    assert meta.name.decode() == card["name"] and meta.version.decode() == "1.2.0"
    assert b"digits" in meta.description and meta.minParserVersion == b"1.0.0"
    sg = meta.subgraphMetadata[0]
    tin, tout = sg.inputTensorMetadata[0], sg.outputTensorMetadata[0]
    assert tin.name == b"image" and tout.name == b"probabilities"
    props = tin.content.contentProperties
    assert tin.content.contentPropertiesType == ms.ContentProperties.ImageProperties
    assert props.colorSpace == ms.ColorSpaceType.RGB and (props.defaultSize.width, props.defaultSize.height) == (32, 32)
    norm = tin.processUnits[0].options
    assert tin.processUnits[0].optionsType == ms.ProcessUnitOptions.NormalizationOptions
    np.testing.assert_allclose(norm.mean, 255 * np.asarray(card["model"]["input"]["mean"]), rtol=1e-6)
    np.testing.assert_allclose(norm.std, 255 * np.asarray(card["model"]["input"]["std"]), rtol=1e-6)
    (labels,) = tout.associatedFiles
    assert labels.name == b"labels.txt" and labels.type == ms.AssociatedFileType.TENSOR_AXIS_LABELS
    assert tflite_file.associated_files(model.read_bytes())["labels.txt"] == (bundle_float / "labels.txt").read_bytes()
    assert (bundle_float / "labels.txt").read_text().split() == [str(i) for i in range(10)]
    # MediaPipe Tasks runs the file unchanged on a digit image: same scores as the host interpreter
    pixels, x = _digit_image(card)
    mp_scores = _mediapipe_classify(model, pixels)
    host = _host_scores(model, card, x)
    assert set(mp_scores) == {str(i) for i in range(10)}  # category names come from labels.txt
    for name, score in mp_scores.items():
        assert score == pytest.approx(host[int(name)], abs=1e-5), name


def test_full_integer_int8_bundle(bundle_int8):
    """No float compute op (residual ADDs included), uint8 pixels in and probabilities out, MediaPipe
    reads it, top-1 agreement with the float subnet on the test split."""
    from ai_edge_litert.interpreter import Interpreter

    model = bundle_int8 / "model.tflite"
    buf = model.read_bytes()
    ops = tflite_file.op_counts(buf)
    assert ops["ADD"] >= 3 and ops["CONV_2D"] >= 8 and ops["SOFTMAX"] == 1, ops
    assert tflite_file.float_compute_ops(buf) == []
    assert ops["DEQUANTIZE"] == 0 and ops["QUANTIZE"] == 2  # only the uint8 <-> int8 boundary
    it = Interpreter(model_path=str(model))
    (inp,), (outp,) = it.get_input_details(), it.get_output_details()
    assert inp["dtype"] == np.uint8 and inp["quantization"] == (1.0, 0)  # raw pixels, normalization folded
    assert outp["dtype"] == np.uint8 and outp["quantization"][0] == pytest.approx(1 / 256)
    card = read_bundle(bundle_int8)
    assert card["model"]["precision"] == "int8" and card["model"]["input"]["normalization_folded"]
    acc = card["accuracy"]
    assert acc["images"] == 270 and acc["top1_agreement"] >= 0.92, acc  # a barely trained model: near ties
    pixels, x = _digit_image(card)
    mp_scores = _mediapipe_classify(model, pixels)
    host = _host_scores(model, card, x)
    assert set(mp_scores) == {str(i) for i in range(10)}
    for name, score in mp_scores.items():  # uint8 pixels in as they are, probabilities dequantized
        assert score == pytest.approx(host[int(name)], abs=1e-6), name


class _Residual(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.a(x))
        return self.fc((y + self.b(y)).mean((2, 3)))


def test_int8_float_io(tmp_path):
    """--io float (normalized image in, QUANTIZE / DEQUANTIZE only at the boundary) stays full-integer
    and agrees with torch (--io int8: the mixed-precision test below)."""
    from hwnas.deploy.app import AppModel, run_app_tflite, write_tflite
    from hwnas.deploy.metadata import ModelFacts

    io = "float"
    torch.manual_seed(0)
    net = _Residual().eval()
    facts = ModelFacts(name="r", version="1", description="d", labels=("a", "b", "c", "d"), mean=(0.5,) * 3,
                       std=(0.25,) * 3, height=8, width=8, input=io, output="logits")
    x = torch.randn(64, 3, 8, 8).clamp(-2, 2)
    pixels = ((x * 0.25 + 0.5) * 255).round().clamp(0, 255)
    calib = (pixels if io != "float" else x).permute(0, 2, 3, 1).numpy()
    path = write_tflite(net, tmp_path / "m.tflite", facts, quant="int8", calib=calib)
    buf = path.read_bytes()
    ops = tflite_file.op_counts(buf)
    assert tflite_file.float_compute_ops(buf) == []
    assert (ops["ADD"], ops["MUL"]) == (1, 0), ops  # the residual ADD; the app normalizes float input
    names = tflite_file.op_names(tflite_file.load(buf))
    assert (names[0], names[-1]) == ("QUANTIZE", "DEQUANTIZE") and ops["QUANTIZE"] == ops["DEQUANTIZE"] == 1
    normalized = (pixels / 255 - 0.5) / 0.25
    with torch.no_grad():
        ref = AppModel(net, facts.mean, facts.std, softmax=False)(normalized.permute(0, 2, 3, 1)).numpy()
    got = run_app_tflite(path, normalized.numpy(), facts)
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9
    assert np.abs(got - ref).max() <= 0.25 * np.abs(ref).max()  # as the PT2E int8 tests bound it


def _mixed_subnet():
    """A cut-down resnet18-mp subnet (8 px): its stem, an identity-shortcut and a projection-shortcut
    basic block at (w1, a2) with trained-looking PACT alphas (not the initial 6, which a converter
    writes as a plain ReLU6), pooling and a classifier; in its deploy form."""
    from hwnas.quant.export import deployable
    from hwnas.quant.quantizers import PACT
    from hwnas.spaces import create_space
    from hwnas.nn.blocks import build_op

    torch.manual_seed(0)
    s = create_space("resnet18-mp", width=0.25, resolution=8, num_classes=4)
    specs = s.layers(s.smallest())
    assert [specs[i].op for i in (0, 1, 3)] == ["conv", "basic", "basic"] and specs[3].stride == 2
    net = torch.nn.Sequential(*(build_op(specs[i]) for i in (0, 1, 3)), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(specs[3].out_shape[0], 4)).eval()
    for m in net.modules():
        if isinstance(m, PACT):
            m.alpha.data.uniform_(1.5, 5.0)
    return deployable(net)


def test_relu6_clip_form_equals_the_clamp():
    """The app-export form of PACT's frozen clip computes the same function as clamp(x, 0, alpha)."""
    from hwnas.quant.blocks import deploy_clip, with_clip_form

    x = torch.linspace(-8, 8, 4001)
    for clip in (0.37, 1.0, 2.5, 6.0, 7.3):
        for signed in (False, True):
            ref = deploy_clip(x, clip, signed, "clamp")
            torch.testing.assert_close(deploy_clip(x, clip, signed, "relu6"), ref, atol=4e-6 * clip, rtol=0)
    with pytest.raises(ValueError, match="unknown clip form 'min'"):
        deploy_clip(x, 1.0, form="min")
    dep = _mixed_subnet()
    rel6 = with_clip_form(dep, "relu6")
    assert all(getattr(m, "clip_form", "clamp") == "clamp" for m in dep.modules())  # a copy
    images = torch.randn(16, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(rel6(images), dep(images), atol=1e-5, rtol=1e-5)


def test_full_integer_int8_of_a_mixed_precision_subnet(tmp_path):
    """PACT's learned clips (resnet18-mp: after each block's ReLU and its first conv) no longer stay
    float MINIMUM ops: zero float compute ops, and the file agrees with the deploy-form subnet.
    With --io int8 (pixel - 128 in, no conversion op at either end)."""
    from ai_edge_litert.interpreter import Interpreter

    from hwnas.deploy.app import AppModel, run_app_tflite, write_tflite
    from hwnas.deploy.metadata import ModelFacts

    dep = _mixed_subnet()
    facts = ModelFacts(name="mp", version="1", description="d", labels=("a", "b", "c", "d"), mean=(0.5,) * 3,
                       std=(0.25,) * 3, height=8, width=8, input="int8", output="logits")
    x = torch.randn(64, 3, 8, 8).clamp(-2, 2)
    pixels = ((x * 0.25 + 0.5) * 255).round().clamp(0, 255)
    path = write_tflite(dep, tmp_path / "m.tflite", facts, quant="int8", calib=pixels.permute(0, 2, 3, 1).numpy())
    buf = path.read_bytes()
    ops = tflite_file.op_counts(buf)
    assert tflite_file.float_compute_ops(buf) == [], ops
    assert ops["MINIMUM"] == 0 and ops["ADD"] >= 2 and ops["QUANTIZE"] == ops["DEQUANTIZE"] == 0, ops
    (inp,) = Interpreter(model_path=str(path)).get_input_details()
    assert inp["dtype"] == np.int8 and inp["quantization"] == (1.0, -128)  # pixel - 128
    normalized = (pixels / 255 - 0.5) / 0.25
    with torch.no_grad():
        ref = AppModel(dep, facts.mean, facts.std, softmax=False)(normalized.permute(0, 2, 3, 1)).numpy()
    got = run_app_tflite(path, normalized.numpy(), facts)
    assert np.abs(got - ref).max() <= 0.25 * np.abs(ref).max(), (np.abs(got - ref).max(), np.abs(ref).max())
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.8


def test_onnx_carries_the_same_facts(bundle_float):
    import onnxruntime as ort

    from hwnas.export import read_onnx_metadata

    meta = read_onnx_metadata(bundle_float / "model.onnx")
    card = read_bundle(bundle_float)
    assert meta["labels"] == [str(i) for i in range(10)] and meta["layout"] == "NHWC"
    assert meta["mean"] == card["model"]["input"]["mean"] and meta["version"] == "1.2.0"
    assert meta["genes"] == [int(g) for g in GENES.split(",")] and meta["name"] == card["name"]
    sess = ort.InferenceSession(str(bundle_float / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"] and [o.name for o in sess.get_outputs()] == ["probabilities"]
    _, x = _digit_image(card)
    onnx_scores = sess.run(None, {"image": x.transpose(0, 2, 3, 1)})[0][0]
    np.testing.assert_allclose(onnx_scores, _host_scores(bundle_float / "model.tflite", card, x), atol=1e-5)


def test_bundle_card_and_checksums(bundle_float, finetuned, capsys):
    card = read_bundle(bundle_float)
    assert card["genes"] == [int(g) for g in GENES.split(",")] and card["space"]["name"] == "mbv2"
    assert card["source"]["kind"] == "subnet" and card["source"]["finetune"]["config"]["lr"] == 0.1
    assert card["costs"]["macs"] > 0 and card["costs"]["bitops"] == 32 * 32 * card["costs"]["macs"]
    acc = card["accuracy"]
    assert acc["images"] == 270 and acc["top1_agreement"] == 1.0 and acc["tflite_top1"] == acc["torch_top1"]
    pred = {r["device"]: r for r in card["latency"]["predicted"]}
    assert set(pred) == {"host", "loop"} and pred["host"]["predicted_ms"] > 0
    assert card["versions"]["ai-edge-litert"] and card["versions"]["hwnas"]
    assert sorted(card["files"]) == ["labels.txt", "model.onnx", "model.tflite"]
    md = (bundle_float / CARD_MD).read_text()
    assert "| host | tflite |" in md and "## Accuracy" in md and GENES in md
    check = subprocess.run(["sha256sum", "-c", CHECKSUMS], cwd=bundle_float, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 5, check.stdout
    # errors: one line, exit code 2
    code, _, err = run_cli(["bundle", "-c", str(finetuned), "-o", str(bundle_float)], capsys)
    assert code == 2 and err.count("\n") == 1 and "already holds" in err
    code, _, err = run_cli(["bundle", "-c", str(finetuned), "-o", str(bundle_float / "x"), "-g", "1,2,3"], capsys)
    assert code == 2 and "genes" in err
    code, _, err = run_cli(["bundle", "-c", str(finetuned), "-o", str(bundle_float / "x"), "--quant", "int8",
                            "--input", "uint8"], capsys)
    assert code == 2 and "--input applies to float models" in err
    code, _, err = run_cli(["bundle", "-c", str(finetuned), "-o", str(bundle_float / "x"), "--io", "int8"], capsys)
    assert code == 2 and "--io applies to --quant int8" in err
    assert not (bundle_float / "x").exists()


def test_export_recalibrates_bn_of_a_supernet_subnet(supernet, tmp_path, capsys):
    """`hwnas export` from a supernet checkpoint: the exported model computes the recalibrated subnet."""
    from hwnas.deploy.source import load_source
    from hwnas.models import subnet_from_checkpoint
    from hwnas.runtimes import invoke

    code, _, err = run_cli(["export", "--checkpoint", str(supernet), "-g", GENES, "-o", str(tmp_path), "--format", "onnx"], capsys)
    assert code == 0, err
    src = load_source(supernet, GENES)
    raw = subnet_from_checkpoint(supernet, genes_text=GENES)
    assert src.recalibrated_batches > 0
    stored = torch.load(supernet, weights_only=True)  # training keeps what labels.txt / metadata need
    assert stored["class_names"] == [str(i) for i in range(10)] and len(stored["mean"]) == 3
    assert src.class_names == tuple(stored["class_names"]) and "class_names_note" not in src.extra
    x = torch.cat([src.data.test[i][0][None] for i in range(32)])
    y = torch.tensor([src.data.test[i][1] for i in range(32)])
    got = invoke(tmp_path / "model.onnx", x.numpy())
    with torch.no_grad():
        recal, stale = src.model(x).numpy(), raw.eval()(x).numpy()
    np.testing.assert_allclose(got, recal, atol=1e-4)
    assert np.abs(stale - recal).max() > 1e-2  # the supernet's own BN statistics give another model
    acc = float((got.argmax(1) == y.numpy()).mean())
    assert acc == float((recal.argmax(1) == y.numpy()).mean())


def test_finetune_resume_and_errors(supernet, tmp_path):
    from hwnas.deploy.finetune import FinetuneConfig, finetune

    cfg = FinetuneConfig(epochs=2, steps_per_epoch=3, seed=1, kd=True, recalibration_batches=2)
    straight = finetune(supernet, GENES, tmp_path / "a", cfg)

    class Killed(Exception):
        pass

    def kill_after_first_epoch(epoch, total, loss):
        if epoch == 1:
            raise Killed  # as a SIGKILL after the epoch's checkpoint was written

    with pytest.raises(Killed):
        finetune(supernet, GENES, tmp_path / "b", cfg, progress=kill_after_first_epoch)
    assert torch.load(tmp_path / "b" / "finetune.pt", weights_only=True)["finetune"]["epoch"] == 1
    resumed = finetune(supernet, GENES, tmp_path / "b", cfg, resume=True)
    assert straight.steps == resumed.steps == 6
    a = torch.load(straight.checkpoint, weights_only=True)
    b = torch.load(resumed.checkpoint, weights_only=True)
    assert a["kind"] == "subnet" and a["class_names"] == [str(i) for i in range(10)]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    with pytest.raises(HwnasError, match="exists: pass --resume"):
        finetune(supernet, GENES, tmp_path / "a", cfg)
    with pytest.raises(HwnasError, match="different kd"):
        finetune(supernet, GENES, tmp_path / "a", replace(cfg, kd=False), resume=True)
    with pytest.raises(HwnasError, match="fine-tuned with different genes"):
        finetune(supernet, "1" + GENES[1:], tmp_path / "a", cfg, resume=True)
    with pytest.raises(HwnasError, match="recalibration_batches must be >= 1, got 0"):
        replace(cfg, recalibration_batches=0)
    with pytest.raises(HwnasError, match="holds a subnet; finetune starts from a supernet"):
        finetune(straight.checkpoint, None, tmp_path / "c", cfg)


def _wrapper(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "benchmark_model"
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def _loop_profile(tmp_path: Path, port: int, with_binary: bool = True) -> Path:
    mask = format(1 << min(os.sched_getaffinity(0)), "x")
    p = tmp_path / ("loop.toml" if with_binary else "loop-no-binary.toml")
    p.write_text(f"""
name = "loop"
human_name = "Loopback device"
kind = "phone"
soc = "this host"
abi = "arm64-v8a"
remote_work_dir = "/data/local/tmp/hwnas"

[connection]
transport = "adb-shell"
host = "127.0.0.1"
port = {port}

[cpu]
big_mask = "{mask}"
cores = "big"
default_threads = 1

[runtimes.tflite]
delegates = ["xnnpack", "cpu", "gpu"]
{'binary = "/data/local/tmp/hwnas/benchmark_model"' if with_binary else ''}
[thermal]
source = "none"
fixed_pause_s = 0.0
""")
    return p


def test_verify_on_the_loopback_device(bundle_float, tmp_path, make_loopback_adbd, adb_test_key,  # noqa: F811
                                       monkeypatch, capsys):
    """`hwnas verify` pushes the model, measures it with the device's benchmark_model (taskset, the
    profile's delegate), checks pushed inputs' outputs against the host, and writes the card."""
    dev = make_loopback_adbd()
    bm = _wrapper(dev.sandbox / "hwnas", f'exec "{sys.executable}" "{FAKE_BENCHMARK_MODEL}" "$@"')
    profile = _loop_profile(tmp_path, dev.port)
    key_home = tmp_path / "android"
    key_home.mkdir()
    shutil.copy(adb_test_key, key_home / "adbkey")
    shutil.copy(f"{adb_test_key}.pub", key_home / "adbkey.pub")
    monkeypatch.setenv("ANDROID_USER_HOME", str(key_home))
    bundle = tmp_path / "b"
    shutil.copytree(bundle_float, bundle)
    code, out, err = run_cli(["verify", "--device", str(profile), "--bundle", str(bundle), "--rounds", "2",
                              "--runs", "5", "--warmup", "1", "--inputs", "3"], capsys)
    assert code == 0, err
    assert "verified" in out and "Loo" in out  # the rest from the card (the table wraps)
    card = read_bundle(bundle)  # checksums rewritten with the card
    (row,) = card["latency"]["measured"]
    assert row["device"] == "loop" and row["delegate"] == "xnnpack" and row["cpu_mask"]
    assert row["runs"] == 5 and len(row["round_medians_ms"]) == 2 and row["median_ms"] == min(row["round_medians_ms"])
    assert row["runtime_version"]  # the tool's "Tensorflow Version" line
    pred = next(r for r in card["latency"]["predicted"] if r["device"] == "loop")["predicted_ms"]
    assert row["predicted_ms"] == pred
    assert row["error_pct"] == pytest.approx(100 * (row["median_ms"] - pred) / pred)
    assert row["output_check"]["top1_agree"] == 3 and row["output_check"]["max_abs_diff"] <= 1e-4
    assert (dev.sandbox / "hwnas" / "model.tflite").read_bytes() == (bundle / "model.tflite").read_bytes()
    assert "| loop |" in (bundle / CARD_MD).read_text()

    # a build without --output_filepath: latency only, said so in the card
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    filtered = ('args=""; for a in "$@"; do case "$a" in --output_filepath=*) ;; *) args="$args $a";; esac; done; '
                f'exec "{sys.executable}" "{FAKE_BENCHMARK_MODEL}" $args')
    _wrapper(dev.sandbox / "hwnas", filtered)
    code, out, err = run_cli(["verify", "--device", str(profile), "--bundle", str(bundle), "--rounds", "1",
                              "--runs", "2", "--warmup", "0", "--inputs", "1"], capsys)
    assert code == 0, err
    row = read_bundle(bundle)["latency"]["measured"][0]
    assert row["outputs"] == "latency only" and "only latency was verified" in row["output_check"]["note"]

    # failures leave the card unchanged: a device without benchmark_model, a tampered bundle
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    bm.unlink()
    code, _, err = run_cli(["verify", "--device", str(profile), "--bundle", str(bundle), "--rounds", "1"], capsys)
    assert code == 2 and "benchmark_model not found or not executable" in err
    code, _, err = run_cli(["verify", "--device", str(_loop_profile(tmp_path, dev.port, with_binary=False)),
                            "--bundle", str(bundle)], capsys)
    assert code == 2 and "binary" in err
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before
    (bundle / "labels.txt").write_text("tampered\n")
    code, _, err = run_cli(["verify", "--device", str(profile), "--bundle", str(bundle)], capsys)
    assert code == 2 and "labels.txt does not match its SHA-256" in err


def test_class_names_of_old_checkpoints(tmp_path):
    """Stored names win; an older checkpoint without them takes its dataset's, else class_0.. (said so)."""
    from hwnas.data import load_data
    from hwnas.deploy.source import class_names_of

    p = tmp_path / "old.pt"
    assert class_names_of({"class_names": ["cat", "dog"]}, None, 2, p) == (("cat", "dog"), None)
    names, note = class_names_of({}, None, 3, p)
    assert names == ("class_0", "class_1", "class_2") and "stores no class names" in note and str(p) in note
    names, note = class_names_of({}, load_data("digits", resolution=8), 10, p)
    assert names == tuple(str(i) for i in range(10)) and "taken from its dataset digits" in note
    with pytest.raises(HwnasError, match="3 class names stored, the model has 2 classes"):
        class_names_of({"class_names": ["a", "b", "c"]}, None, 2, p)
