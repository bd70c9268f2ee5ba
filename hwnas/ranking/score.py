"""Score a supernet against a shipped ground truth: minutes, no stand-alone training.

Each subnet of the ground truth is evaluated with inherited weights (materialize + BN
recalibration on training images, SPOS Sec. 3.3) on the supernet run's ``search-val`` split (held
out of training, as search uses it), and its top-1 is correlated with the ground truth's mean
stand-alone top-1: Kendall tau, Spearman rho, Pearson r, and how many of the ground truth's
top-5 are in the supernet's top-10. Next to them: the same figures for MACs alone (the free proxy
a supernet must beat) and the ground truth's seed-to-seed correlation (its noise ceiling).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.io import atomic_write_json
from hwnas.ranking.metrics import correlations, top_k_found
from hwnas.ranking.report import plot_ranking, write_rows_csv
from hwnas.ranking.truth import GroundTruth, load_ground_truth

TOP_K, WITHIN = 5, 10


@dataclass(frozen=True)
class TruthScore:
    truth: GroundTruth
    checkpoint: Path
    split: str
    rows: list[dict[str, Any]]
    #: supernet top-1 vs ground-truth top-1
    correlations: dict[str, float | None]
    top5_in_top10: int
    macs_baseline: dict[str, float | None]
    macs_top5_in_top10: int
    seed_to_seed: dict[str, float | None]
    seconds: float
    csv_path: Path
    plot_path: Path
    json_path: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": str(self.checkpoint), "ground_truth": str(self.truth.path),
            "space": self.truth.space, "data": self.truth.data["name"], "split": self.split,
            "n": len(self.rows), "correlations": self.correlations,
            "top5_in_top10": self.top5_in_top10,
            "baselines": {"macs": {**self.macs_baseline, "top5_in_top10": self.macs_top5_in_top10},
                          "seed_to_seed": self.seed_to_seed},
            "seconds": round(self.seconds, 2),
            "files": {"csv": str(self.csv_path), "plot": str(self.plot_path), "json": str(self.json_path)},
        }


def score_checkpoint(checkpoint: str | Path, ground_truth: str | Path, *, split: str = "search-val",
                     calib_batches: int = 20, batch_size: int = 256, out: str | Path | None = None,
                     data_root: str | None = None, device: str | None = None) -> TruthScore:
    """Evaluate the ground truth's subnets in the supernet of ``checkpoint`` and correlate."""
    from hwnas.checkpoint import version_stamp
    from hwnas.models import supernet_from_checkpoint
    from hwnas.train.distributed import resolve_device
    from hwnas.train.evaluate import SubnetEvaluator, eval_data
    from hwnas.train.loop import train_config_of

    t0 = time.perf_counter()
    checkpoint = Path(checkpoint)
    truth = load_ground_truth(ground_truth)
    net, ckpt = supernet_from_checkpoint(checkpoint)
    config = train_config_of(ckpt, checkpoint)
    truth.check_compatible(net.space.config(), config.data, config.split_seed, f"checkpoint {checkpoint}")
    dev = resolve_device(device)
    ev, cal = eval_data(ckpt, checkpoint, split=split, batch_size=batch_size,
                        calib_batches=calib_batches, data_root=data_root)
    evaluator = SubnetEvaluator(net.to(dev), ev, cal, dev)
    rows = []
    for i, e in enumerate(truth.subnets):
        r = evaluator(e.genes)
        rows.append({"index": i, "genes": ",".join(map(str, e.genes)), "macs": e.macs,
                     "params": e.params, "supernet_top1": r.top1, "supernet_loss": r.loss,
                     "standalone_top1": e.mean_top1,
                     **{f"standalone_top1_seed{s}": v for s, v in zip(truth.seeds, e.top1)}})
    sup = np.array([r["supernet_top1"] for r in rows])
    gt = truth.top1()
    corr = correlations(sup, gt)
    out = Path(out) if out is not None else checkpoint.parent / "rank_check"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"truth_{Path(str(truth.path)).stem}"
    csv_path, plot_path, json_path = (out / f"{stem}.{ext}" for ext in ("csv", "png", "json"))
    write_rows_csv(csv_path, rows)
    plot_ranking(plot_path, rows, corr,
                 f"{truth.describe()}: {config.strategy} {config.sharing} supernet vs ground truth "
                 f"({len(rows)} subnets, seed-to-seed Kendall {_fmt(truth.seed_to_seed()['kendall'])})")
    score = TruthScore(truth=truth, checkpoint=checkpoint, split=split, rows=rows, correlations=corr,
                       top5_in_top10=top_k_found(gt, sup, TOP_K, WITHIN),
                       macs_baseline=truth.macs_baseline(),
                       macs_top5_in_top10=top_k_found(gt, truth.macs(), TOP_K, WITHIN),
                       seed_to_seed=truth.seed_to_seed(), seconds=time.perf_counter() - t0,
                       csv_path=csv_path, plot_path=plot_path, json_path=json_path)
    atomic_write_json(json_path, {**score.to_dict(), "strategy": config.strategy, "sharing": config.sharing,
                                  "calib_batches": calib_batches, "supernet_epochs": int(ckpt.get("epoch", 0)),
                                  "versions": version_stamp()})
    return score


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"
