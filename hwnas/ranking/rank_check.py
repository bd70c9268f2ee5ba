"""Ranking check: does the supernet rank subnets like stand-alone training does?

``N`` subnets are sampled uniformly (seeded). Each is evaluated on the search-val split with
inherited weights (materialize + BN recalibration, :mod:`hwnas.train.evaluate`), and trained from
scratch with the run's own recipe (optimizer, schedule, augmentation, batch size) for ``epochs``
epochs and evaluated on the same split. Kendall tau, Spearman rho and Pearson r (``scipy.stats``)
between the two, on top-1 and on loss, go to ``rank_check.json``; per-subnet rows to
``rank_check.csv``; a scatter plot to ``rank_check.png``. Papers report Kendall tau ~0.55 for SPOS
and 0.63 for K-shot NAS on NAS-Bench-201.

Subnets are sampled ``uniform`` (as SPOS samples paths; on a small space most of them are of
similar size) or ``spread`` (evenly over the MACs range of the space, smallest to largest: a
ranking across sizes, where the MACs baseline below is the figure to beat).

Two reference figures come with the correlations, because a tau means little without them:

* ``macs``: the same correlations with the subnets' MACs as the "prediction" (a free proxy; a
  supernet is only useful when it beats it);
* ``seed_to_seed`` (with ``seeds >= 2``): the correlation between two stand-alone trainings of the
  same subnets with different seeds, the noise ceiling of the ground truth. With ``seeds`` K each
  subnet is trained K times and the ground truth is the mean; no supernet can rank better than
  the stand-alone trainings agree with each other.

Stand-alone results are appended to ``standalone.jsonl`` as they finish; a rerun with the same
settings reuses them (the long part resumes).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from hwnas.cost import CostModel
from hwnas.data import DataSplits
from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json
from hwnas.ranking.metrics import correlations
from hwnas.ranking.report import plot_ranking, write_rows_csv
from hwnas.ranking.sample import spread_sample
from hwnas.spaces.base import SearchSpace
from hwnas.supernet import Subnet
from hwnas.train.config import TrainConfig
from hwnas.train.evaluate import EvalResult, SubnetEvaluator, evaluate_model

#: stand-alone replica k of subnet i trains with seed ``seed * 1000 + i + k * REPLICA_SEED_STRIDE``
REPLICA_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class RankCheckResult:
    rows: list[dict[str, Any]]
    #: ``{"top1": {"kendall", "spearman", "pearson"}, "loss": {...}}``; None where undefined.
    correlations: dict[str, dict[str, float | None]]
    #: reference correlations on top-1: ``macs`` (MACs as the predictor) and, with two or more
    #: seeds, ``seed_to_seed`` (stand-alone seed 0 vs seed 1: the ground truth's noise ceiling)
    baselines: dict[str, dict[str, float | None]]
    csv_path: Path
    plot_path: Path
    json_path: Path


def train_standalone(space: SearchSpace, genes: tuple[int, ...], data: DataSplits, config: TrainConfig,
                     epochs: int, device: torch.device, seed: int) -> Subnet:
    """Train the static subnet ``genes`` from scratch with the supernet run's recipe (optimizer,
    schedule, batch size, label smoothing; no warm-up, default initialisation)."""
    from hwnas.ranking.standalone import StandaloneRecipe, train_subnet

    recipe = StandaloneRecipe(epochs=epochs, batch_size=config.batch_size, lr=config.base_lr(1),
                              momentum=config.momentum, nesterov=config.nesterov,
                              weight_decay=config.weight_decay, label_smoothing=config.label_smoothing,
                              warmup_steps=0, steps_per_epoch=config.steps_per_epoch,
                              zero_init_residual=False)
    return train_subnet(space, genes, data, recipe, seed=seed, device=device)


SAMPLES = ("uniform", "spread")


def rank_check(checkpoint: str | Path, *, n: int = 20, epochs: int = 5, out: str | Path | None = None,
               seed: int = 0, seeds: int = 1, sample: str = "uniform", calib_batches: int = 20,
               data_root: str | None = None,
               device: str | None = None, quiet: bool = False, console: Console | None = None) -> RankCheckResult:
    """Run the ranking check for a supernet training checkpoint (see module docstring)."""
    from hwnas.models import supernet_from_checkpoint
    from hwnas.train.distributed import resolve_device
    from hwnas.train.evaluate import eval_data
    from hwnas.train.loop import data_for, train_config_of

    if n < 2:
        raise HwnasError(f"--n must be >= 2 to correlate rankings, got {n}")
    if epochs < 1:
        raise HwnasError(f"--epochs must be >= 1, got {epochs}")
    if seeds < 1:
        raise HwnasError(f"--seeds must be >= 1, got {seeds}")
    if sample not in SAMPLES:
        raise HwnasError(f"--sample must be one of {', '.join(SAMPLES)}, got {sample!r}")
    checkpoint = Path(checkpoint)
    console = console or Console(stderr=True)
    net, ckpt = supernet_from_checkpoint(checkpoint)
    config = train_config_of(ckpt, checkpoint)
    if data_root is not None:
        config = config.replace(data_root=data_root)
    dev = resolve_device(device)
    space = net.space
    out = Path(out) if out is not None else checkpoint.parent / "rank_check"
    out.mkdir(parents=True, exist_ok=True)

    ev_batches, cal_batches = eval_data(ckpt, checkpoint, split="search-val",
                                        batch_size=min(256, config.batch_size),
                                        calib_batches=calib_batches, data_root=data_root)
    evaluator = SubnetEvaluator(net.to(dev), ev_batches, cal_batches, dev)
    data = data_for(config, space.resolution, space.in_channels)
    rng = np.random.default_rng(seed)
    if sample == "spread":
        archs = spread_sample(space, n, rng)
    else:
        archs = [tuple(int(v) for v in g) for g in space.sample_many(rng, n)]
    costs = CostModel(space)(np.array(archs))

    recipe = json.dumps({k: v for k, v in config.to_dict().items()
                         if k not in ("workers", "log_every", "data_root", "download", "strategy", "sharing",
                                      "options", "device", "runtime", "tables_dir",
                                      "amp", "epochs")}, sort_keys=True)
    recipe_id = hashlib.sha256(f"{recipe}|{epochs}|{seed}".encode()).hexdigest()[:16]
    cache_path = out / "standalone.jsonl"
    cache: dict[tuple[tuple[int, ...], int], dict[str, Any]] = {}
    if cache_path.exists():
        for line in cache_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("recipe") == recipe_id:
                cache[tuple(rec["genes"]), int(rec.get("replica", 0))] = rec

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    rows = []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console,
                  disable=quiet or not console.is_terminal) as progress:
        task = progress.add_task("rank check", total=n * seeds)
        for i, g in enumerate(archs):
            sup: EvalResult = evaluator(g)
            reps = []
            for k in range(seeds):
                rec = cache.get((g, k))
                if rec is None:
                    t0 = time.perf_counter()
                    model = train_standalone(space, g, data, config, epochs, dev,
                                             seed=seed * 1000 + i + REPLICA_SEED_STRIDE * k)
                    res = evaluate_model(model, ev_batches, dev)
                    rec = {"recipe": recipe_id, "genes": list(g), "replica": k, "top1": res.top1,
                           "loss": res.loss, "seconds": round(time.perf_counter() - t0, 2)}
                    with open(cache_path, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    cache[g, k] = rec
                reps.append(rec)
                progress.update(task, advance=1)
            row = {"index": i, "genes": ",".join(map(str, g)), "macs": int(costs["macs"][i]),
                   "params": int(costs["params"][i]), "supernet_top1": sup.top1,
                   "supernet_loss": sup.loss,
                   "standalone_top1": float(np.mean([r["top1"] for r in reps])),
                   "standalone_loss": float(np.mean([r["loss"] for r in reps])),
                   "standalone_seconds": float(sum(r["seconds"] for r in reps))}
            for k, r in enumerate(reps):
                row[f"standalone_top1_seed{k}"] = r["top1"]
            rows.append(row)

    col = lambda name: np.array([r[name] for r in rows], dtype=np.float64)  # noqa: E731
    corr = {
        "top1": correlations(col("supernet_top1"), col("standalone_top1")),
        "loss": correlations(col("supernet_loss"), col("standalone_loss")),
    }
    baselines = {"macs": correlations(col("macs"), col("standalone_top1"))}
    if seeds >= 2:
        baselines["seed_to_seed"] = correlations(col("standalone_top1_seed0"), col("standalone_top1_seed1"))
    csv_path, plot_path, json_path = out / "rank_check.csv", out / "rank_check.png", out / "rank_check.json"
    write_rows_csv(csv_path, rows)
    plot_ranking(plot_path, rows, corr["top1"],
          f"{space.name} w{space.width} r{space.resolution} {config.data}, {config.strategy} "
          f"{config.sharing} supernet, "
          f"{n} {sample} subnets, {epochs} ep x {seeds} seed(s)")
    from hwnas.checkpoint import version_stamp

    atomic_write_json(json_path, {
        "checkpoint": str(checkpoint), "strategy": config.strategy, "sharing": config.sharing,
        "space": space.config(),
        "data": config.data, "split": "search-val", "n": n, "epochs": epochs, "seed": seed,
        "seeds": seeds, "sample": sample, "calib_batches": calib_batches, "correlations": corr, "baselines": baselines,
        "supernet_epochs": int(ckpt.get("epoch", 0)), "versions": version_stamp()})
    return RankCheckResult(rows, corr, baselines, csv_path, plot_path, json_path)
