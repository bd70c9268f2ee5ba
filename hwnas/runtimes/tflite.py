"""LiteRT (TFLite): ``.tflite`` flatbuffers written by litert-torch (no TensorFlow needed), run by
the ``ai_edge_litert`` interpreter on this computer and by ``benchmark_model`` on a device.

Metadata of a float export goes into a sidecar ``<file>.tflite.json`` next to the model. Int8 models
for latency come from litert-torch's PT2E path (:func:`hwnas.quant.export.export_int8_for_latency`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.io import atomic_write, atomic_write_json
from hwnas.runtimes.base import RuntimeSpec, silenced
from hwnas.runtimes.registry import register_runtime


def sidecar_path(path: str | Path) -> Path:
    """``model.tflite`` -> ``model.tflite.json``: where the metadata of a TFLite export lives."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def export_tflite(model: Any, path: str | Path, sample: Any, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (eval mode) to a ``.tflite`` flatbuffer via litert-torch, metadata in
    ``<path>.json``."""
    import litert_torch

    path = Path(path)
    model = model.eval()
    with silenced():
        edge = litert_torch.convert(model, (sample,))
        atomic_write(path, lambda tmp: edge.export(str(tmp)))
    if metadata is not None:
        atomic_write_json(sidecar_path(path), metadata)
    return path


def export_for_latency(model: Any, sample: Any, path: str | Path) -> Path:
    """A float ``.tflite`` file for latency measurement (no metadata)."""
    return export_tflite(model, path, sample, metadata=None)


def invoke_tflite(path: Path, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """Outputs of a ``.tflite`` model for a float batch, one invoke per image; int8 / uint8 inputs
    are quantized and outputs dequantized with the tensors' scale and zero point."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_path=str(path), num_threads=threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise HwnasError(f"LiteRT cannot load {path}: {exc}") from None
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    for xi in x:
        xi = xi[None]
        if np.issubdtype(inp["dtype"], np.integer):
            scale, zp = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            xi = np.clip(np.round(xi / scale + zp), info.min, info.max)
        interp.set_tensor(inp["index"], xi.astype(inp["dtype"]))
        interp.invoke()
        y = interp.get_tensor(outp["index"])
        if np.issubdtype(outp["dtype"], np.integer):
            scale, zp = outp["quantization"]
            y = (y.astype(np.float32) - zp) * scale
        outs.append(y.astype(np.float32))
    return np.concatenate(outs)


RUNTIME = register_runtime(RuntimeSpec(
    name="tflite",
    title="LiteRT (TFLite)",
    suffix=".tflite",
    delegates=("cpu", "xnnpack", "gpu", "nnapi", "npu"),
    precisions=("fp32", "int8"),
    export="hwnas.runtimes.tflite:export_tflite",
    latency_exporters={"fp32": "hwnas.runtimes.tflite:export_for_latency",
                       "int8": "hwnas.quant.export:export_int8_for_latency"},
    invoke="hwnas.runtimes.tflite:invoke_tflite",
    host_runner="hwnas.runners.host:TfliteHostRunner",
    device_runner="hwnas.runners.benchmark_model:BenchmarkModelRunner",
    parser="hwnas.runners.benchmark_model:parse_benchmark_model",
    device_tool="benchmark_model",
    host_package="ai-edge-litert",
    build_hint="or build it: bazel build -c opt --config=android_arm64 "
               "//tflite/tools/benchmark:benchmark_model",
    binary_urls={
        "arm64-v8a": "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/"
                     "release/lite/tools/nightly/latest/android_aarch64_benchmark_model",
        "armeabi-v7a": "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/"
                       "release/lite/tools/nightly/latest/android_arm_benchmark_model",
    },
    export_estimate_s={"fp32": 2.0, "int8": 4.0},
))
