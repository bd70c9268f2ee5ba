"""Export static subnets to ONNX and TFLite, stamp their metadata, and check parity with torch.

* ONNX: ``torch.onnx.export`` (dynamo exporter); the space, genes and hwnas version go into
  ``metadata_props``; ``onnx.checker`` must pass; onnxruntime output is compared with torch.
* TFLite: ``litert_torch.convert`` (no TensorFlow needed); metadata goes into a sidecar
  ``<file>.json`` next to the model; the LiteRT interpreter (``ai_edge_litert``) is compared with torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.io import atomic_write, atomic_write_json

FORMATS = ("onnx", "tflite")
#: parity bound on max |runtime - torch| for float exports (issue 4).
PARITY_TOL = 1e-4


@dataclass
class ExportResult:
    format: str
    path: str
    seconds: float
    size_bytes: int
    max_abs_diff: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def _quiet():
    """Silence converters that print progress, at the Python level and on file descriptors 1 and 2
    (litert's C++ writer logs there). Errors still propagate as exceptions."""
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _sample_input(model: nn.Module, resolution: int, batch: int = 1, in_channels: int = 3) -> torch.Tensor:
    return torch.randn(batch, in_channels, resolution, resolution)


def export_onnx(model: nn.Module, path: str | Path, sample: torch.Tensor,
                metadata: dict[str, Any] | None = None, opset: int | None = None,
                dynamo: bool = True) -> Path:
    """Write ``model`` (eval mode) to ONNX at ``path`` with ``metadata`` in ``metadata_props``.

    ``dynamo=False`` uses the TorchScript exporter: the same graph for these CNNs, ~50x faster,
    which matters when profiling hundreds of one-op models.
    """
    import onnx

    path = Path(path)
    model = model.eval()

    def write(tmp: Path) -> None:
        kwargs: dict[str, Any] = {"input_names": ["input"], "output_names": ["logits"], "dynamo": dynamo}
        if dynamo:
            kwargs["external_data"] = False
        if opset is not None:
            kwargs["opset_version"] = opset
        with _quiet(), torch.no_grad():
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


def export_tflite(model: nn.Module, path: str | Path, sample: torch.Tensor,
                  metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to a ``.tflite`` flatbuffer via litert-torch, metadata in ``<path>.json``."""
    import litert_torch

    path = Path(path)
    model = model.eval()
    with _quiet():
        edge = litert_torch.convert(model, (sample,))
    with _quiet():
        atomic_write(path, lambda tmp: edge.export(str(tmp)))
    if metadata is not None:
        atomic_write_json(sidecar_path(path), metadata)
    return path


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def run_onnx(path: str | Path, x: np.ndarray, threads: int = 1) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def run_tflite(path: str | Path, x: np.ndarray, threads: int = 1) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], x.astype(inp["dtype"]))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


RUNNERS = {"onnx": run_onnx, "tflite": run_tflite}


def parity(path: str | Path, fmt: str, model: nn.Module, shape: tuple[int, ...],
           trials: int = 3, seed: int = 0) -> float:
    """Max |runtime output - torch output| over ``trials`` random inputs."""
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    model = model.eval()
    for _ in range(trials):
        x = torch.randn(*shape, generator=gen)
        with torch.no_grad():
            ref = model(x).numpy()
        got = RUNNERS[fmt](path, x.numpy())
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def export_model(model: nn.Module, out_dir: str | Path, *, formats: tuple[str, ...] = FORMATS,
                 resolution: int, in_channels: int = 3, name: str = "model",
                 metadata: dict[str, Any] | None = None, check: bool = True,
                 tolerance: float = PARITY_TOL) -> list[ExportResult]:
    """Export ``model`` to each format in ``out_dir`` and (by default) check parity with torch.

    A parity failure above ``tolerance`` raises :class:`HwnasError` naming the file and the error;
    the exported file is kept for inspection.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise HwnasError(f"unknown export format {bad[0]!r}; allowed: {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sample = _sample_input(model, resolution, 1, in_channels)
    results = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        t0 = time.perf_counter()
        if fmt == "onnx":
            export_onnx(model, path, sample, metadata)
        else:
            export_tflite(model, path, sample, metadata)
        seconds = time.perf_counter() - t0
        res = ExportResult(fmt, str(path), seconds, path.stat().st_size, metadata=dict(metadata or {}))
        if check:
            res.max_abs_diff = parity(path, fmt, model, tuple(sample.shape))
            if not res.max_abs_diff <= tolerance:
                raise HwnasError(
                    f"{path}: {fmt} output differs from torch by {res.max_abs_diff:.3g} "
                    f"(allowed {tolerance:g})")
        results.append(res)
    return results
