"""Search-free selection (SparseNAS Sec. 5.6): the best member of the sparse set within a budget.

"Given the constraints of different MACs, SparseNAS can quickly select target sub-networks without
an evolutionary search" (13 ms per constraint in the paper's Table 6). :func:`pick` takes a
supernet trained with ``--strategy sparse``, filters the members of its sparse set by MACs (the
cost model) and / or latency (the device's latency table, :mod:`hwnas.latency`), and returns the
feasible member the supernet rates best: top-1 on the run's ``search-val`` split with inherited
weights after BN recalibration (SPOS Sec. 3.3).

Member accuracies are cached next to the checkpoint (``sparse_accuracy.json``, keyed by the
checkpoint's SHA-256 and the evaluation settings): the first pick evaluates the feasible members it
has not seen, later picks are a table lookup. ``select_seconds`` times the selection itself
(costs, filter, lookup, arg-max), ``eval_seconds`` the evaluations a pick had to run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError

CACHE = "sparse_accuracy.json"
CACHE_FORMAT = "hwnas.sparse_accuracy"


@dataclass
class PickResult:
    genes: tuple[int, ...]
    top1: float
    macs: float
    latency_ms: float | None
    members: int
    feasible: int
    evaluated: int
    eval_seconds: float
    select_seconds: float
    sparse_space: str
    budget: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["genes"] = list(self.genes)
        return d


def sparse_space_of(ckpt: dict[str, Any], checkpoint: Path, given: str | Path | None) -> Path:
    if given is not None:
        return Path(given)
    cfg = ckpt.get("train_config") or {}
    if cfg.get("strategy") != "sparse":
        raise HwnasError(f"checkpoint {checkpoint} was trained with --strategy {cfg.get('strategy')!r}, not "
                         f"sparse: pass --sparse-space FILE to pick from a sparse set")
    return Path(cfg.get("options", {}).get("space_file", ""))


def pick(checkpoint: str | Path, *, max_macs: float | None = None, max_latency_ms: float | None = None,
         device: str | None = None, runtime: str = "tflite", tables_dir: str | None = None,
         sparse_space: str | Path | None = None, calib_batches: int = 20, batch_size: int = 256,
         max_images: int | None = None, torch_device: str | None = None) -> PickResult:
    """The best member of the checkpoint's sparse set within the budget (see module docstring)."""
    from hwnas.checkpoint import load_checkpoint, space_of
    from hwnas.cost import CostModel
    from hwnas.sparse.pairs import file_sha256
    from hwnas.spaces.sparse_set import load_sparse_set
    from hwnas.units import format_amount

    if max_macs is None and max_latency_ms is None:
        raise HwnasError("pick needs a budget: --max-macs X and / or --max-latency-ms Y --device D")
    if max_latency_ms is not None and device is None:
        raise HwnasError("--max-latency-ms needs --device (and --runtime): the latency table of which device?")
    checkpoint = Path(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    if ckpt["kind"] != "supernet":
        raise HwnasError(f"checkpoint {checkpoint} holds a {ckpt['kind']}, not a supernet")
    space = space_of(ckpt)
    path = sparse_space_of(ckpt, checkpoint, sparse_space)
    sparse = load_sparse_set(path, space, what=f"checkpoint {checkpoint}")
    latency = None
    if max_latency_ms is not None:
        from hwnas.latency.predict import LatencyPredictor
        from hwnas.latency.table import load_table

        latency = LatencyPredictor(load_table(device, space, runtime, tables_dir), space)

    # the cached accuracies of this checkpoint
    settings = {"checkpoint_sha256": file_sha256(checkpoint), "split": "search-val",
                "calib_batches": calib_batches, "max_images": max_images}
    cache_path = checkpoint.parent / CACHE
    cache: dict[str, float] = {}
    if cache_path.is_file():
        try:
            stored = json.loads(cache_path.read_text(encoding="utf-8"))
            if all(stored.get(k) == v for k, v in settings.items()):
                cache = {str(k): float(v) for k, v in stored.get("top1", {}).items()}
        except (OSError, ValueError, AttributeError):
            cache = {}

    t0 = time.perf_counter()
    X = sparse.genes
    macs = CostModel(space)(X)["macs"]
    ok = np.ones(len(X), dtype=bool)
    if max_macs is not None:
        ok &= macs <= max_macs
    lat = None if latency is None else latency(X)
    if lat is not None:
        ok &= lat <= max_latency_ms
    t_filter = time.perf_counter() - t0
    if not ok.any():
        if lat is not None and max_macs is None:
            j = int(np.argmin(lat))
            cheapest = f"{lat[j]:.4g} ms on {device}"
        else:
            j = int(np.argmin(macs))
            cheapest = f"{format_amount(macs[j])} MACs" + ("" if lat is None else f", {lat[j]:.4g} ms on {device}")
        budget = " and ".join(b for b in (
            None if max_macs is None else f"--max-macs {format_amount(max_macs)}",
            None if max_latency_ms is None else f"--max-latency-ms {max_latency_ms:g}") if b)
        raise HwnasError(f"no member of the sparse set {path} ({len(X)} members) meets {budget}: the cheapest "
                         f"has {cheapest} (genes {','.join(map(str, X[j]))})")
    idx = np.flatnonzero(ok)
    keys = [",".join(map(str, X[i])) for i in idx]
    todo = [i for i, k in zip(idx, keys) if k not in cache]
    t_eval = 0.0
    if todo:
        from hwnas.train.evaluate import SubnetEvaluator

        t1 = time.perf_counter()
        ev = SubnetEvaluator.from_checkpoint(checkpoint, split="search-val", batch_size=batch_size,
                                             calib_batches=calib_batches, device=torch_device,
                                             max_images=max_images)
        for i in todo:
            cache[",".join(map(str, X[i]))] = ev(tuple(int(v) for v in X[i])).top1
        t_eval = time.perf_counter() - t1
        from hwnas.checkpoint import version_stamp
        from hwnas.io import atomic_write_json

        atomic_write_json(cache_path, {"format": CACHE_FORMAT, **settings, "sparse_space": str(path),
                                       "versions": version_stamp(), "top1": cache})
    t2 = time.perf_counter()
    acc = np.array([cache[k] for k in keys])
    cost = macs[idx] if lat is None else lat[idx]
    best = idx[np.lexsort((cost, -acc))[0]]  # most accurate; the cheaper on ties
    t_select = t_filter + time.perf_counter() - t2
    return PickResult(genes=tuple(int(v) for v in X[best]), top1=float(cache[",".join(map(str, X[best]))]),
                      macs=float(macs[best]), latency_ms=None if lat is None else float(lat[best]),
                      members=len(X), feasible=int(ok.sum()), evaluated=len(todo),
                      eval_seconds=round(t_eval, 4), select_seconds=t_select, sparse_space=str(path),
                      budget={"max_macs": max_macs, "max_latency_ms": max_latency_ms, "device": device,
                              "runtime": runtime if device else None})
