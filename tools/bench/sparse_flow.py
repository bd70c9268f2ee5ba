"""The SparseNAS flow on built-in data, shared by the SparseNAS benchmarks (sparse_predictors.py,
sparse_training.py, pick_vs_search.py). Not a benchmark itself.

Every stage writes into one work folder and is skipped when its file exists, so the three
benchmarks reuse one proxy supernet, one pairs file, one predictor and one sparse set:

    WORK/proxy/last.pt       proxy supernet (uniform, 2 paths per batch, 30/150 of the recipe's epochs)
    WORK/pairs.jsonl         architecture / accuracy pairs from it (resumable)
    WORK/gbdt.json           the early predictor (GBDT, 100 estimators, lr 0.01)
    WORK/sparse.json         the sparse set (best K per MACs bucket by the predictor)
    WORK/train-<name>/       supernets trained by sparse_training.py (sparse-n3: --strategy sparse n_sub 3)

Defaults (``--space mbv2 --width 0.25 --resolution 16 --data digits --sharing elastic``): on
this 2-core machine the proxy takes ~15 s and a pair ~0.2 s. With ``--sharing independent`` the
proxy stays at chance after its 114 steps on digits (and 93 on gratings); elastic sharing
learns (pairs at 40-55 % top-1 after the proxy).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Flow:
    work: Path
    space: str
    width: float
    resolution: int
    data: str
    sharing: str
    seed: int = 0

    def config(self, **kw: Any):
        from hwnas.train.config import TrainConfig

        return TrainConfig(space=self.space, width=self.width, resolution=self.resolution, data=self.data,
                           sharing=self.sharing, seed=self.seed, workers=0, **kw)

    @property
    def proxy(self) -> Path:
        return self.work / "proxy" / "last.pt"

    @property
    def pairs(self) -> Path:
        return self.work / "pairs.jsonl"

    @property
    def predictor(self) -> Path:
        return self.work / "gbdt.json"

    @property
    def sparse(self) -> Path:
        return self.work / "sparse.json"


def add_flow_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--work", type=Path, default=Path("runs/sparsebench"), help="work folder (stages are reused)")
    ap.add_argument("--space", default="mbv2")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--sharing", default="elastic")
    ap.add_argument("--pairs", type=int, default=400, help="architecture / accuracy pairs (SparseNAS: 1000)")
    ap.add_argument("--buckets", type=int, default=50, help="MACs buckets of the sparse set (SparseNAS: 350)")
    ap.add_argument("--per-bucket", type=int, default=5, help="members per bucket (SparseNAS: 5)")
    ap.add_argument("--seed", type=int, default=0)


def flow_from_args(a: argparse.Namespace) -> Flow:
    return Flow(a.work, a.space, a.width, a.resolution, a.data, a.sharing, a.seed)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stages(f: Flow) -> dict[str, float]:
    """Seconds of the flow's stages as they ran in this work folder (WORK/stages.json)."""
    p = f.work / "stages.json"
    return json.loads(p.read_text()) if p.exists() else {}


def record(f: Flow, stage: str, seconds: float) -> float:
    d = stages(f)
    d[stage] = round(seconds, 2)
    f.work.mkdir(parents=True, exist_ok=True)
    (f.work / "stages.json").write_text(json.dumps(d, indent=1) + "\n")
    return seconds


def ensure_proxy(f: Flow) -> float:
    """Train the proxy supernet unless it exists; returns its training seconds (0 when reused)."""
    from hwnas.sparse.schedule import PROXY_PATHS, proxy_epochs
    from hwnas.train.loop import train_supernet

    if f.proxy.exists():
        return 0.0
    log("proxy supernet")
    t0 = time.perf_counter()
    train_supernet(f.config(strategy="uniform", options={"paths": PROXY_PATHS}, epochs=proxy_epochs(f.data)),
                   f.proxy.parent, quiet=True)
    return record(f, "proxy", time.perf_counter() - t0)


def ensure_pairs(f: Flow, n: int) -> tuple[Any, float]:
    from hwnas.sparse.pairs import collect_pairs, read_pairs

    ensure_proxy(f)
    if f.pairs.exists():
        p = read_pairs(f.pairs, allow_partial=True)
        if len(p) >= n:
            return p, 0.0
    log(f"{n} pairs")
    t0 = time.perf_counter()
    p = collect_pairs(f.proxy, f.pairs, n=n, seed=f.seed, quiet=True)
    return p, record(f, "pairs", time.perf_counter() - t0)


def ensure_sparse(f: Flow, n_pairs: int, buckets: int, per_bucket: int) -> tuple[Any, dict[str, float]]:
    """The sparse set (building the stages before it as needed) and the seconds of each stage run now."""
    from hwnas.sparse.evolve import build_sparse_set
    from hwnas.sparse.predictor import fit_predictor, load_predictor
    from hwnas.spaces.sparse_set import load_sparse_set

    secs: dict[str, float] = {"proxy": ensure_proxy(f)}
    pairs, secs["pairs"] = ensure_pairs(f, n_pairs)
    if not f.predictor.exists():
        t0 = time.perf_counter()
        fit_predictor(pairs, "gbdt", seed=f.seed).save(f.predictor)
        secs["fit"] = record(f, "fit", time.perf_counter() - t0)
    if not f.sparse.exists():
        log(f"sparse set: {buckets} buckets x {per_bucket}")
        t0 = time.perf_counter()
        sparse, _ = build_sparse_set(load_predictor(f.predictor), buckets=buckets, per_bucket=per_bucket,
                                     seed=f.seed)
        sparse.save(f.sparse)
        secs["space"] = record(f, "space", time.perf_counter() - t0)
    return load_sparse_set(f.sparse), secs
