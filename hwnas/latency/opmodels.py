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

from hwnas.nn.blocks import build_op
from hwnas.runtimes import resolve
from hwnas.spaces.base import OpSpec, SearchSpace


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


class OpModelCache:
    """Exports each op once per (runtime, precision) and returns the cached file.

    ``runtime`` may be a legacy name (``tflite-int8`` = ``tflite`` at ``int8``, see
    :func:`hwnas.runtimes.resolve`)."""

    def __init__(self, runtime: str, cache_dir: str | Path | None = None, seed: int = 0,
                 precision: str | None = None) -> None:
        self.spec, self.precision = resolve(runtime, precision)
        self.runtime = self.spec.name
        self._export = self.spec.latency_exporter(self.precision)
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.dir = root / self.spec.tag(self.precision)
        self.seed = seed
        self._lock = threading.Lock()

    def path_for(self, key: str) -> Path:
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        return self.dir / f"{digest}{self.spec.suffix}"

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
                self._export(module, sample, path)
        return path


class SubnetModelCache:
    """Whole subnets of one space configuration exported once per runtime (end-to-end
    measurements: calibration and validation). Weights are seeded random values: latency does not
    depend on them."""

    def __init__(self, space: SearchSpace, runtime: str, cache_dir: str | Path | None = None,
                 seed: int = 0, precision: str | None = None) -> None:
        from hwnas.latency.table import space_tag

        self.space = space
        self.spec, self.precision = resolve(runtime, precision)
        self.runtime = self.spec.name
        self._export = self.spec.latency_exporter(self.precision)
        root = Path(cache_dir) if cache_dir is not None else default_subnet_cache_dir()
        self.dir = root / self.spec.tag(self.precision) / space_tag(space)
        self.seed = seed

    def path_for(self, genes: tuple[int, ...]) -> Path:
        digest = hashlib.sha1(",".join(map(str, genes)).encode()).hexdigest()[:16]
        return self.dir / f"{digest}{self.spec.suffix}"

    def get(self, genes: tuple[int, ...]) -> Path:
        from hwnas.supernet import Subnet

        path = self.path_for(genes)
        if not path.is_file():
            torch.manual_seed(self.seed)
            model = Subnet(self.space, genes).eval()
            sample = torch.randn(1, self.space.in_channels, self.space.resolution, self.space.resolution)
            self._export(model.eval(), sample, path)
        return path
