"""One-op and end-to-end model files for latency measurement, exported once and cached.

Each latency key becomes a tiny model holding just that op (a whole MBConv / ShuffleNetV2 block with
its BN folded by the converter). Files are cached by key under a cache folder so that several devices
(profiled in parallel) and later runs reuse them; conversions are serialised by a lock because the
converters are not thread-safe.

Where the time of an end-to-end measurement goes on the host: converting a whole subnet with
litert-torch (``torch.export``, its decompositions, the FX passes and the lowering to MLIR, each
proportional to the number of graph nodes), not timing it. Two things make it faster without
changing the model the runtime executes: BatchNorm is folded into the preceding convolution before
export (:func:`fold_batchnorm`; every converter folds it anyway, so the file holds the same
operators and a third fewer graph nodes reach the converter), and several subnets are converted in
a process pool bounded by the CPU cores (:func:`export_workers`). Figures: tools/bench/e2e_export.py.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

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


#: environment variable capping the processes that export subnets in parallel (1: no pool)
ENV_EXPORT_WORKERS = "HWNAS_EXPORT_WORKERS"
#: a pool pays each worker's start (importing torch and the converter, seconds): worth it only for
#: runtimes whose exports take about that long, and for at least this many subnets
POOL_MIN_EXPORT_S = 1.0
POOL_MIN_SUBNETS = 3


def fold_batchnorm(model: nn.Module, sample: torch.Tensor) -> int:
    """Fold every eval-mode BatchNorm that directly follows a convolution into that convolution
    (weights and bias, :func:`torch.nn.utils.fusion.fuse_conv_bn_weights`) and replace it by an
    identity; returns how many were folded. Pairs are found by running ``sample`` once and
    matching a BatchNorm whose input is a convolution's output tensor, so no naming convention is
    assumed. The outputs are unchanged up to rounding; converters fold BatchNorm the same way."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    calls: list[tuple[str, nn.Module, Any, Any]] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: calls.append((name, mod, inp[0], out)))
             for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for h in hooks:
            h.remove()
    modules = dict(model.named_modules())
    folded = 0
    for (_, conv, _, conv_out), (bn_name, bn, bn_in, _) in zip(calls, calls[1:]):
        if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn_in is conv_out
                and not bn.training and bn.track_running_stats and bn.num_features == conv.out_channels
                and conv.weight.shape[0] == bn.num_features):
            continue
        w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                    bn.weight, bn.bias)
        conv.weight, conv.bias = w, b
        parent, _, attr = bn_name.rpartition(".")
        setattr(modules[parent] if parent else model, attr, nn.Identity())
        folded += 1
    return folded


def export_workers(n: int, runtime: str, precision: str | None = None) -> int:
    """Processes to export ``n`` subnets with: one per idle CPU core (cores minus the 1-minute load
    average, plus this process's own), at most ``n``; ``$HWNAS_EXPORT_WORKERS`` sets it; 1 (no
    pool) for fast exporters or fewer than :data:`POOL_MIN_SUBNETS`. On a machine other jobs keep
    busy a pool only adds its workers' start (measured: tools/bench/e2e_export.py)."""
    spec, precision = resolve(runtime, precision)
    if n < POOL_MIN_SUBNETS or spec.export_estimate_s.get(precision, 2.0) < POOL_MIN_EXPORT_S:
        return 1
    cap = os.environ.get(ENV_EXPORT_WORKERS, "").strip()
    if cap.isdigit() and int(cap) > 0:
        return max(1, min(n, int(cap)))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:  # cores other jobs keep busy do not convert anything: count the idle ones (and this one)
        idle = int(cores - os.getloadavg()[0] + 1)
    except OSError:
        idle = cores
    return max(1, min(n, cores, idle))


def export_subnet(space_config: dict[str, Any], genes: Sequence[int], runtime: str, precision: str | None,
                  seed: int, path: str | Path) -> str:
    """Export subnet ``genes`` of the space ``space_config`` to ``path`` for latency measurement
    (seeded random weights, BatchNorm folded for fp32): what :class:`SubnetModelCache` and its
    worker processes run."""
    from hwnas.spaces.registry import space_from_config
    from hwnas.supernet import Subnet

    space = space_from_config(space_config)
    spec, precision = resolve(runtime, precision)
    torch.manual_seed(seed)
    model = Subnet(space, tuple(genes)).eval()
    sample = torch.randn(1, space.in_channels, space.resolution, space.resolution)
    if precision == "fp32":  # int8 exports calibrate and fuse themselves (PT2E)
        fold_batchnorm(model, sample)
    spec.latency_exporter(precision)(model, sample, Path(path))
    return str(path)


def _pool_init() -> None:
    torch.set_num_threads(1)  # one process per core: no intra-op threads on top


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
        path = self.path_for(genes)
        if not path.is_file():
            export_subnet(self.space.config(), genes, self.runtime, self.precision, self.seed, path)
        return path

    def get_many(self, genes_list: Sequence[tuple[int, ...]], workers: int | None = None,
                 on_each: Callable[[tuple[int, ...]], None] | None = None) -> dict[tuple[int, ...], Path]:
        """The files of every subnet of ``genes_list``, exporting the missing ones in ``workers``
        processes (default :func:`export_workers`); ``on_each(genes)`` after each is ready."""
        paths = {tuple(g): self.path_for(tuple(g)) for g in genes_list}
        missing = [g for g, p in paths.items() if not p.is_file()]
        n = workers if workers is not None else export_workers(len(missing), self.runtime, self.precision)
        if n > 1 and len(missing) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_pool_init) as pool:
                futures = {pool.submit(export_subnet, self.space.config(), g, self.runtime, self.precision,
                                       self.seed, paths[g]): g for g in missing}
                for fut in as_completed(futures):
                    fut.result()
                    if on_each is not None:
                        on_each(futures[fut])
            done = set(missing)
        else:
            done = set()
        for g in paths:
            if g not in done:
                self.get(g)
                if on_each is not None:
                    on_each(g)
        return paths
