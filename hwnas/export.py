"""Export static subnets for every runtime, stamp their metadata, check parity with torch, and
write the export manifest.

Each format is a registered runtime (:mod:`hwnas.runtimes`): its ``export`` writes the file with
the metadata stored the runtime's way (ONNX ``metadata_props``, a TFLite ``<file>.json`` sidecar)
and its ``invoke`` runs the file for the parity check. :func:`export_model` writes
``<name>.export.json`` next to the models: the metadata plus one record per exported file.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json
from hwnas.runtimes import get_runtime, invoke, load_ref, runtime_names
from hwnas.runtimes.onnx import export_onnx, read_onnx_metadata
from hwnas.runtimes.tflite import export_tflite, sidecar_path

#: parity bound on max |runtime - torch| for float exports.
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


def manifest_path(out_dir: str | Path, name: str = "model") -> Path:
    """Where :func:`export_model` writes its manifest: ``<out_dir>/<name>.export.json``."""
    return Path(out_dir) / f"{name}.export.json"


def parity(path: str | Path, model: nn.Module, shape: tuple[int, ...], trials: int = 3,
           seed: int = 0) -> float:
    """Max |runtime output - torch output| over ``trials`` random inputs of ``shape``."""
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    model = model.eval()
    for _ in range(trials):
        x = torch.randn(*shape, generator=gen)
        with torch.no_grad():
            ref = model(x).numpy()
        worst = max(worst, float(np.abs(invoke(path, x.numpy()) - ref).max()))
    return worst


def export_model(model: nn.Module, out_dir: str | Path, *, formats: tuple[str, ...] | None = None,
                 resolution: int, in_channels: int = 3, name: str = "model",
                 metadata: dict[str, Any] | None = None, check: bool = True,
                 tolerance: float = PARITY_TOL) -> list[ExportResult]:
    """Export ``model`` for each runtime in ``formats`` (default: every registered runtime) into
    ``out_dir``, check parity with torch (``check``), and write the manifest
    (:func:`manifest_path`).

    A parity failure above ``tolerance`` raises :class:`HwnasError` naming the file and the error;
    the exported file is kept for inspection.
    """
    specs = [get_runtime(f) for f in (formats if formats is not None else runtime_names())]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sample = torch.randn(1, in_channels, resolution, resolution)
    results = []
    for spec in specs:
        path = out_dir / f"{name}{spec.suffix}"
        t0 = time.perf_counter()
        load_ref(spec.export)(model, path, sample, metadata)
        seconds = time.perf_counter() - t0
        res = ExportResult(spec.name, str(path), seconds, path.stat().st_size, metadata=dict(metadata or {}))
        if check:
            res.max_abs_diff = parity(path, model, tuple(sample.shape))
            if not res.max_abs_diff <= tolerance:
                raise HwnasError(
                    f"{path}: {spec.name} output differs from torch by {res.max_abs_diff:.3g} "
                    f"(allowed {tolerance:g})")
        results.append(res)
    atomic_write_json(manifest_path(out_dir, name),
                      {**(metadata or {}), "results": [r.to_dict() for r in results]})
    return results


__all__ = ["PARITY_TOL", "ExportResult", "export_model", "export_onnx", "export_tflite", "manifest_path",
           "parity", "read_onnx_metadata", "sidecar_path"]
