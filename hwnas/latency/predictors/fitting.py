"""Measurements in, fitted and scored predictors out: what ``hwnas lut fit / validate / curve`` do.

* :func:`read_csv` reads measurements taken anywhere: columns ``genes`` (gene values joined by
  ``-``) and ``latency_ms``; other columns are ignored.
* :func:`spread_genes` picks subnets to measure spread evenly over the predicted latency range
  (a learned model sees the fast and the slow end of the space, not only the middle that random
  sampling concentrates on).
* :func:`fit_predictors` fits every requested predictor on one set of measurements and writes
  each to its file (:func:`~hwnas.latency.predictors.base.predictor_path`) once all are fitted.
* :func:`score` is the validation figures: MAPE, within +-5 % / +-10 %, Kendall tau, Spearman.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.latency.predictors.base import (
    PredictorContext,
    StoredPredictor,
    create_predictor,
    load_predictor,
    predictor_class,
    predictor_document,
    predictor_from_document,
    predictor_path,
    save_predictor,
)

CSV_COLUMNS = ("genes", "latency_ms")
#: learning-curve sizes (measured subnets)
CURVE_SIZES = (10, 20, 50, 100)


@dataclass
class Measurements:
    """End-to-end latencies (ms) of architectures, and where they come from."""

    genes: list[tuple[int, ...]]
    latency_ms: np.ndarray
    source: str
    #: where they were measured (:mod:`hwnas.latency.fingerprint`); None: unknown (a CSV)
    fingerprint: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.genes)

    def subset(self, index: Sequence[int]) -> Measurements:
        return Measurements([self.genes[i] for i in index], self.latency_ms[np.asarray(index, dtype=np.int64)],
                            self.source, self.fingerprint)

    def without(self, genes: set[tuple[int, ...]]) -> Measurements:
        return self.subset([i for i, g in enumerate(self.genes) if g not in genes])


def read_csv(path: str | Path, space) -> Measurements:
    """Measurements from a CSV file (columns ``genes`` and ``latency_ms``; others ignored).

    Every problem is one :class:`HwnasError` naming the file and the row (the header is row 1).
    """
    from hwnas.io import read_text

    path = Path(path)
    text = read_text(path, "measurements CSV")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise HwnasError(f"measurements CSV {path} lacks the column(s) {', '.join(missing)} "
                         f"(has: {', '.join(header) or 'no header'}); it needs {', '.join(CSV_COLUMNS)}")
    reader.fieldnames = header
    genes: list[tuple[int, ...]] = []
    lat: list[float] = []
    for row_no, row in enumerate(reader, start=2):
        where = f"measurements CSV {path} row {row_no}"
        gtext = (row.get("genes") or "").strip()
        try:
            values = [int(v) for v in gtext.split("-")]
        except ValueError:
            raise HwnasError(f"{where}: genes {gtext!r} are not integers joined by '-' "
                             f"(e.g. {'-'.join(map(str, space.smallest()))})") from None
        try:
            g = space.validate(values)
        except HwnasError as exc:
            raise HwnasError(f"{where}: {exc}") from None
        ltext = (row.get("latency_ms") or "").strip()
        try:
            ms = float(ltext)
        except ValueError:
            raise HwnasError(f"{where}: latency_ms {ltext!r} is not a number") from None
        if not math.isfinite(ms) or ms <= 0:
            raise HwnasError(f"{where}: latency_ms {ltext!r} must be a finite number > 0")
        genes.append(g)
        lat.append(ms)
    if not genes:
        raise HwnasError(f"measurements CSV {path} has no data rows")
    return Measurements(genes, np.asarray(lat, dtype=np.float64), f"csv:{path.name}")


def write_csv(path: str | Path, m: Measurements) -> Path:
    from hwnas.io import atomic_write_text

    lines = ["genes,latency_ms"] + [f"{'-'.join(map(str, g))},{float(v)!r}" for g, v in zip(m.genes, m.latency_ms)]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def spread_genes(space, n: int, predict: Callable[[np.ndarray], np.ndarray], seed: int,
                 pool_factor: int = 20, exclude: set[tuple[int, ...]] | None = None) -> list[tuple[int, ...]]:
    """``n`` distinct subnets whose predicted latencies spread evenly over the space's range: the
    nearest of a pool to each of ``n`` evenly spaced targets. The pool holds ``pool_factor * n``
    random subnets, each with a random fraction of its genes taken from the smallest or the largest
    subnet (uniform sampling alone concentrates in the middle of the range, never near its ends)."""
    rng = np.random.default_rng(seed)
    exclude = exclude or set()
    size = max(pool_factor * n, 2 * n)
    base = space.sample_many(rng, size)
    ends = np.asarray([space.smallest(), space.largest()])[rng.integers(0, 2, size)]
    take = rng.random(base.shape) < rng.random((size, 1))
    pool = [tuple(int(v) for v in g) for g in np.where(take, ends, base)]
    pool = [g for g in dict.fromkeys([space.smallest(), space.largest(), *pool]) if g not in exclude]
    if len(pool) < n:
        raise HwnasError(f"cannot find {n} distinct new subnets of space {space.name!r} to measure")
    pred = np.asarray(predict(np.asarray(pool)), dtype=np.float64)
    targets = np.linspace(pred.min(), pred.max(), n)
    free = np.ones(len(pool), dtype=bool)
    chosen = []
    for t in targets:
        cand = np.flatnonzero(free)
        i = int(cand[np.argmin(np.abs(pred[cand] - t))])
        free[i] = False
        chosen.append(pool[i])
    return chosen


def score(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """n, MAPE, within +-5 %, within +-10 %, Kendall tau, Spearman of predictions vs measurements."""
    from scipy.stats import kendalltau, spearmanr

    p = np.asarray(predicted, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    rel = np.abs(p - m) / m
    tau = float(kendalltau(p, m).statistic) if len(m) > 1 else float("nan")
    rho = float(spearmanr(p, m).statistic) if len(m) > 1 else float("nan")
    return {"n": int(len(m)), "mape": float(rel.mean()), "within_5": float(np.mean(rel <= 0.05)),
            "within_10": float(np.mean(rel <= 0.10)), "kendall_tau": tau, "spearman": rho}


def available(names: Sequence[str], context: PredictorContext) -> tuple[list[str], dict[str, str]]:
    """The predictors of ``names`` that ``context`` supports, and why the others are skipped."""
    use, skipped = [], {}
    for n in names:
        if predictor_class(n).needs_table and context.table is None:
            skipped[n] = "no latency table for this device, space and runtime"
        else:
            use.append(n)
    return use, skipped


def check_enough(names: Sequence[str], n: int) -> None:
    short = [(name, predictor_class(name).min_fit) for name in names if n < predictor_class(name).min_fit]
    if short:
        need = max(k for _, k in short)
        raise HwnasError(f"{n} measured subnets are too few to fit {', '.join(s for s, _ in short)}: "
                         f"{'it needs' if len(short) == 1 else 'they need'} at least {need} "
                         f"(measure more, or leave them out with --predictors)")


def fit_in_memory(names: Sequence[str], m: Measurements, context: PredictorContext) -> dict[str, StoredPredictor]:
    """Fit each predictor of ``names`` on ``m`` (nothing written)."""
    check_enough(names, len(m))
    out = {}
    for name in names:
        pred = create_predictor(name)
        pred.fit(m.genes, m.latency_ms, context)
        out[name] = StoredPredictor(pred, predictor_document(pred, context, m.genes, m.latency_ms, m.source,
                                                             fingerprint=m.fingerprint))
    return out


def fit_predictors(names: Sequence[str], m: Measurements, context: PredictorContext,
                   root: str | Path | None = None) -> dict[str, StoredPredictor]:
    """Fit every predictor of ``names`` on ``m``, then write each to its file."""
    fitted = fit_in_memory(names, m, context)
    for name, sp in fitted.items():
        sp.path = save_predictor(predictor_path(context.device, context.space, context.runtime, name, root,
                                                context.precision), sp.doc)
    return fitted


def load_predictors(names: Sequence[str], context: PredictorContext,
                    root: str | Path | None = None) -> dict[str, StoredPredictor]:
    """The stored predictors of ``names`` (each must exist)."""
    return {n: load_predictor(predictor_path(context.device, context.space, context.runtime, n, root,
                                             context.precision), context) for n in names}


def stored_names(names: Sequence[str], context: PredictorContext, root: str | Path | None = None) -> list[str]:
    return [n for n in names if predictor_path(context.device, context.space, context.runtime, n, root,
                                               context.precision).exists()]


def roundtrip(stored: StoredPredictor, context: PredictorContext) -> StoredPredictor:
    """``stored`` rebuilt from its JSON text (what a file read gives)."""
    import json

    return predictor_from_document(json.loads(json.dumps(stored.doc)), context, "predictor document")


@dataclass
class CurvePoint:
    predictor: str
    n_fit: int
    scores: dict[str, float] = field(default_factory=dict)


def learning_curve(names: Sequence[str], m: Measurements, context: PredictorContext, *,
                   sizes: Sequence[int] = CURVE_SIZES, test: int | None = None, repeats: int = 3,
                   seed: int = 0) -> list[CurvePoint]:
    """Each predictor fitted on ``sizes`` random subsets of ``m`` and scored on a fixed held-out
    part (``test`` rows, default: what the largest size leaves, at least 10), mean over ``repeats``
    draws of the fit subset."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(m))
    largest = max(sizes)
    test = test if test is not None else max(10, len(m) - largest)
    if len(m) - test < largest:
        raise HwnasError(f"{len(m)} measurements leave {len(m) - test} to fit on after {test} held out; "
                         f"the learning curve needs {largest + test}")
    held, pool = m.subset(order[:test]), order[test:]
    points = []
    for k in sizes:
        per: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        for r in range(repeats):
            fit = m.subset(rng.choice(pool, size=k, replace=False))
            use = [n for n in names if predictor_class(n).min_fit <= k]
            for name, sp in fit_in_memory(use, fit, context).items():
                per[name].append(score(sp(np.asarray(held.genes)), held.latency_ms))
        for name, scores in per.items():
            if scores:
                points.append(CurvePoint(name, k, {key: float(np.mean([s[key] for s in scores]))
                                                   for key in scores[0]}))
    return points


def plot_predictions(results: dict[str, tuple[np.ndarray, np.ndarray, dict[str, float]]], path: Path,
                     title: str) -> Path:
    """One panel per predictor: predicted vs measured with the +-10 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwnas.io import atomic_write

    k = max(1, len(results))
    cols = min(4, k)
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    allv = np.concatenate([np.concatenate([p, m]) for p, m, _ in results.values()]) if results else np.ones(1)
    lo, hi = float(allv.min()) * 0.9, float(allv.max()) * 1.1
    xs = np.linspace(lo, hi, 10)
    for ax, (name, (p, m, s)) in zip(axes.flat, results.items()):
        ax.plot(xs, xs, "k-", lw=1)
        ax.fill_between(xs, xs * 0.9, xs * 1.1, color="0.85")
        ax.scatter(m, p, s=10)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_title(f"{name}: {s['within_10']:.0%} in +-10 %, tau {s['kendall_tau']:.2f}", fontsize=8)
        ax.set_xlabel("measured (ms)", fontsize=7)
        ax.set_ylabel("predicted (ms)", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(results):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda q: fig.savefig(q, dpi=100, format="png"))
    plt.close(fig)
    return path


def e2e_store_path(device: str, space, runtime: str, root: str | Path | None = None,
                   precision: str | None = None, *, existing: bool = False) -> Path:
    """The end-to-end measurements file of the device's table (shared with calibrate / validate):
    where it is written (under ``root``, by default your tables folder), or with ``existing``
    next to the table that would be read (your folder, then the shipped one)."""
    from hwnas.latency.table import find_table, space_tag, table_path

    t = (find_table if existing else table_path)(device, space.name, runtime, root, precision)
    return t.with_name(f"{t.stem}.{space_tag(space)}.e2e.json")


def store_measurements(path: Path, source: str) -> Measurements:
    """Every measurement in an end-to-end store (``genes`` keys joined by ','), whatever machine
    took it (the learning-curve bench reads the shipped ones: figures of the machine that made them)."""
    from hwnas.latency.validate import EndToEndStore

    d = EndToEndStore(path).records()
    genes = [tuple(int(v) for v in k.split(",")) for k in d]
    return Measurements(genes, np.asarray([float(r["median_ms"]) for r in d.values()]), source)


def describe_skipped(skipped: dict[str, str]) -> str:
    return "; ".join(f"{k} skipped: {v}" for k, v in skipped.items())




def context_for(device: str, space, runtime: str = "tflite", root: str | Path | None = None,
                precision: str | None = None) -> PredictorContext:
    """The context of ``device``'s predictors for ``space``: its latency table when there is one
    (checked to belong to the space and runtime), else none."""
    from hwnas.latency.table import find_table, load_table
    from hwnas.runtimes.registry import resolve

    spec, prec = resolve(runtime, precision)
    table = None
    if find_table(device, space.name, runtime, root, precision).exists():
        table = load_table(device, space, runtime, root, precision)
    return PredictorContext(space, device, spec.name, prec, table)


def open_predictor(device: str, space, name: str, runtime: str = "tflite", root: str | Path | None = None,
                   precision: str | None = None) -> StoredPredictor:
    """The stored predictor ``name`` of ``device`` for ``space`` (``hwnas lut fit`` writes it):
    callable on genes matrices, with ``block_additive``."""
    predictor_class(name)
    ctx = context_for(device, space, runtime, root, precision)
    return load_predictor(predictor_path(device, space, ctx.runtime, name, root, ctx.precision), ctx)
