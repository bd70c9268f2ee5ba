"""One-op and end-to-end model files for latency measurement, exported once and cached.

Each latency key becomes a tiny model holding just that op (a whole MBConv / ShuffleNetV2 block with
its BN folded by the converter). Files are cached by key under a cache folder so that several devices
(profiled in parallel) and later runs reuse them; conversions are serialised by a lock because the
converters are not thread-safe.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.nn.blocks import build_op
from hwnas.spaces.base import OpSpec, SearchSpace

#: runtime name -> model file suffix (``tflite-int8``: int8-quantized TFLite, see hwnas.quant.export)
RUNTIME_SUFFIX = {"tflite": ".tflite", "onnx": ".onnx", "tflite-int8": ".tflite"}


def default_cache_dir() -> Path:
    base = os.environ.get("HWNAS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hwnas")
    return Path(base) / "opmodels"


def default_subnet_cache_dir() -> Path:
    """Where whole-subnet model files for end-to-end measurements are cached."""
    return default_cache_dir().parent / "subnets"


def op_input_shape(spec: OpSpec) -> tuple[int, ...]:
    """Batch-1 input shape of an op: (1, C) for a fully connected layer, (1, C, H, W) otherwise."""
    c, h, w = spec.in_shape
    return (1, c) if spec.op == "linear" else (1, c, h, w)


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIME_SUFFIX:
        raise HwnasError(f"unknown runtime {runtime!r}; allowed: {', '.join(RUNTIME_SUFFIX)}")
    return runtime


def export_for_runtime(model: nn.Module, sample: torch.Tensor, path: Path, runtime: str) -> Path:
    """Write ``model`` for ``runtime`` (TFLite via litert-torch, ONNX via torch.onnx, int8 TFLite
    calibrated on random inputs via :func:`hwnas.quant.export.export_int8_for_latency`)."""
    from hwnas.export import export_onnx, export_tflite

    model = model.eval()
    if runtime == "tflite-int8":
        from hwnas.quant.export import export_int8_for_latency

        return export_int8_for_latency(model, sample, path)
    if runtime == "tflite":
        return export_tflite(model, path, sample, metadata=None)
    return export_onnx(model, path, sample, metadata=None, dynamo=False)


class OpModelCache:
    """Exports each op once per runtime and returns the cached file."""

    def __init__(self, runtime: str, cache_dir: str | Path | None = None, seed: int = 0) -> None:
        self.runtime = check_runtime(runtime)
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.dir = self.dir / runtime
        self.seed = seed
        self._lock = threading.Lock()

    def path_for(self, key: str) -> Path:
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        return self.dir / f"{digest}{RUNTIME_SUFFIX[self.runtime]}"

    def cached(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def get(self, key: str, spec: OpSpec) -> Path:
        path = self.path_for(key)
        with self._lock:
            if not path.is_file():
                gen = torch.Generator().manual_seed(self.seed)
                torch.manual_seed(self.seed)
                module = build_op(spec).eval()
                sample = torch.randn(*op_input_shape(spec), generator=gen)
                export_for_runtime(module, sample, path, self.runtime)
        return path


class SubnetModelCache:
    """Whole subnets of one space configuration exported once per runtime (end-to-end
    measurements: calibration and validation). Weights are seeded random values: latency does not
    depend on them."""

    def __init__(self, space: SearchSpace, runtime: str, cache_dir: str | Path | None = None,
                 seed: int = 0) -> None:
        from hwnas.latency.table import space_tag

        self.space = space
        self.runtime = check_runtime(runtime)
        root = Path(cache_dir) if cache_dir is not None else default_subnet_cache_dir()
        self.dir = root / runtime / space_tag(space)
        self.seed = seed

    def path_for(self, genes: tuple[int, ...]) -> Path:
        digest = hashlib.sha1(",".join(map(str, genes)).encode()).hexdigest()[:16]
        return self.dir / f"{digest}{RUNTIME_SUFFIX[self.runtime]}"

    def get(self, genes: tuple[int, ...]) -> Path:
        from hwnas.supernet import Subnet

        path = self.path_for(genes)
        if not path.is_file():
            torch.manual_seed(self.seed)
            model = Subnet(self.space, genes).eval()
            sample = torch.randn(1, self.space.in_channels, self.space.resolution, self.space.resolution)
            export_for_runtime(model, sample, path, self.runtime)
        return path
