"""ONNX Runtime: ``.onnx`` files written by ``torch.onnx.export``, run by an onnxruntime
``InferenceSession`` on this computer and by ``onnxruntime_perf_test`` on a device.

The deployable export uses the dynamo exporter, stores its metadata in ``metadata_props``
(``hwnas.<key>``, JSON values) and must pass ``onnx.checker``. Latency models use the TorchScript
exporter: the same graph for these CNNs and about 50x faster, which matters for hundreds of
one-op models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.io import atomic_write
from hwnas.runtimes.base import RuntimeSpec, silenced
from hwnas.runtimes.registry import register_runtime


def export_onnx(model: Any, path: str | Path, sample: Any, metadata: dict[str, Any] | None = None,
                opset: int | None = None, dynamo: bool = True) -> Path:
    """Write ``model`` (eval mode) to ONNX at ``path`` with ``metadata`` in ``metadata_props``.

    ``dynamo=False`` uses the TorchScript exporter (see the module docstring).
    """
    import onnx
    import torch

    path = Path(path)
    model = model.eval()

    def write(tmp: Path) -> None:
        kwargs: dict[str, Any] = {"input_names": ["input"], "output_names": ["logits"], "dynamo": dynamo}
        if dynamo:
            kwargs["external_data"] = False
        if opset is not None:
            kwargs["opset_version"] = opset
        with silenced(), torch.no_grad():
            torch.onnx.export(model, (sample,), str(tmp), **kwargs)
        proto = onnx.load(str(tmp))
        for key, value in (metadata or {}).items():
            entry = proto.metadata_props.add()
            entry.key = f"hwnas.{key}"
            entry.value = value if isinstance(value, str) else json.dumps(value)
        proto.producer_name = "hwnas"
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))

    return atomic_write(path, write)


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The ``hwnas.*`` metadata of an exported ONNX file, JSON values decoded."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    out = {}
    for p in proto.metadata_props:
        if p.key.startswith("hwnas."):
            try:
                out[p.key[6:]] = json.loads(p.value)
            except json.JSONDecodeError:
                out[p.key[6:]] = p.value
    return out


def export_for_latency(model: Any, sample: Any, path: str | Path) -> Path:
    """A float ``.onnx`` file for latency measurement (TorchScript exporter, no metadata)."""
    return export_onnx(model, path, sample, metadata=None, dynamo=False)


def invoke_onnx(path: Path, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """Outputs of an ``.onnx`` model (exported at batch 1) for a float batch, one run per image,
    on onnxruntime's CPU execution provider."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise HwnasError(f"onnxruntime cannot load {path}: {exc}") from None
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: xi[None].astype(np.float32)})[0] for xi in x])


RUNTIME = register_runtime(RuntimeSpec(
    name="onnx",
    title="ONNX Runtime",
    suffix=".onnx",
    delegates=("cpu", "xnnpack", "nnapi", "qnn"),
    precisions=("fp32",),
    export="hwnas.runtimes.onnx:export_onnx",
    latency_exporters={"fp32": "hwnas.runtimes.onnx:export_for_latency"},
    invoke="hwnas.runtimes.onnx:invoke_onnx",
    host_runner="hwnas.runners.host:OnnxHostRunner",
    device_runner="hwnas.runners.ort_perf_test:OrtPerfTestRunner",
    parser="hwnas.runners.ort_perf_test:parse_ort_perf_test",
    device_tool="onnxruntime_perf_test",
    host_package="onnxruntime",
    build_hint="build it with onnxruntime's ./build.sh --android --android_abi <abi> "
               "--build_dir build_android (the binary is onnxruntime_perf_test)",
    export_estimate_s={"fp32": 0.1},
))
