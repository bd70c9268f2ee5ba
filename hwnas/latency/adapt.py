"""Adapting a latency table of another computer to this one from a few end-to-end measurements.

A host table describes the computer that measured it (the shipped ones: the development machine).
On another computer its op times are off by a factor that differs between ops only moderately (a
faster or slower core, another cache, another runtime build), so the table's *ranking* of subnets
mostly holds while its *scale* does not. Instead of a re-profile (minutes), :func:`adapt_table`
measures a few subnets (:data:`ADAPT_SUBNETS`) at evenly spaced quantiles of random subnets'
predicted latency (:func:`quantile_genes`: the range a search explores) end to end on this computer, with the table's runtime, and refits the table-sum calibration
``scale * sum + per_op * n_ops + offset`` on them (as ``hwnas lut calibrate`` does; nn-Meter,
Zhang et al. 2021, Sec. 4): the table's own calibration times a factor, plus an offset, or all
three coefficients refitted, whichever predicts the measured subnets best left-one-out
(:func:`choose_calibration`).

The result is stamped with this computer's fingerprint (:mod:`hwnas.latency.fingerprint`) and the
table it adapts, and cached as ``<device>/<space>-<runtime>.<space@wXrY>.adapted.json`` in your
tables folder (or ``--tables-dir``): a second run on this computer reuses it, another computer (or
a changed table) adapts afresh. A table measured on this computer, or whose calibration was
fitted on this computer (``hwnas lut calibrate``), is used as it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.latency.table import LatencyTable, space_tag
from hwnas.spaces.base import SearchSpace

FORMAT = "hwnas.table_adaptation"
FORMAT_VERSION = 2  # 2: the calibration model is chosen left-one-out (older caches: adapt afresh)
#: subnets measured end to end to adapt a table (spread over its predicted range)
ADAPT_SUBNETS = 6
ADAPT_SEED = 2024


@dataclass
class Adaptation:
    """A table's calibration refitted on this computer, and how far off the table was here."""

    table: str
    space: str
    fingerprint: dict[str, Any]
    scale: float
    per_op_ms: float
    offset_ms: float
    #: measured / predicted by the table's own calibration (median over the measured subnets)
    speed_ratio: float
    mape_before: float
    mape_after: float
    genes: list[list[int]] = field(default_factory=list)
    measured_ms: list[float] = field(default_factory=list)
    table_stamp: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    reused: bool = False
    seconds: float = 0.0
    #: which calibration model leave-one-out chose (:data:`MODELS`)
    model: str = "refit"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def apply(self, table: LatencyTable, space: SearchSpace) -> LatencyTable:
        """``table`` with this calibration for ``space`` (in memory; the file is not written)."""
        table.set_calibration(space_tag(space), self.scale, self.offset_ms, per_op_ms=self.per_op_ms,
                              adapted=self.path or True, fingerprint=self.fingerprint)
        return table

    def summary(self) -> str:
        return (f"adapted the table to this computer from {len(self.genes)} subnets measured end to end: "
                f"it runs {self.speed_ratio:.2f}x the table's times ({self.model} calibration); "
                f"prediction error (MAPE) on them "
                f"{self.mape_before:.0%} before, {self.mape_after:.1%} after"
                + (" (reused)" if self.reused else f" ({self.seconds:.0f} s)"))


def writable_root(root: str | Path | None) -> Path | None:
    """``root``, or None (your tables folder) when it is the shipped tables folder, which hwnas
    never writes."""
    from hwnas.latency.table import default_table_dir

    if root is not None and Path(root).resolve() == default_table_dir().resolve():
        return None
    return None if root is None else Path(root)


def adaptation_path(table: LatencyTable, space: SearchSpace, root: str | Path | None = None) -> Path:
    """Where the adaptation of ``table`` for ``space`` is cached: next to where the table is
    written (``root``, by default your tables folder; never the shipped folder)."""
    from hwnas.latency.table import table_path

    root = writable_root(root)
    runtime, precision = table.runtime_precision
    t = table_path(table.metadata["device"], space.name, runtime, root, precision)
    return t.with_name(f"{t.stem}.{space_tag(space)}.adapted.json")


def _table_stamp(table: LatencyTable) -> dict[str, Any]:
    fp = table.metadata.get("fingerprint")
    return {"device": table.metadata.get("device"), "updated": table.metadata.get("updated"),
            "created": table.metadata.get("created"), "keys": len(table.entries),
            "fingerprint": fp.get("id") if isinstance(fp, dict) else None}


def needs_adapting(table: LatencyTable, fingerprint: dict[str, Any], space: SearchSpace | None = None) -> bool:
    """Whether ``table`` was measured elsewhere (another fingerprint; on the host a table without
    one counts as another computer's) and its calibration for ``space`` was not fitted here either
    (``hwnas lut calibrate`` on this computer adapts a table too)."""
    from hwnas.latency.fingerprint import same_machine

    if space is not None:
        cal = table.calibration(space_tag(space)) or {}
        if isinstance(cal.get("fingerprint"), dict) and cal["fingerprint"].get("id") == fingerprint["id"]:
            return False
    fp = table.metadata.get("fingerprint")
    return not same_machine(fp if isinstance(fp, dict) else None, fingerprint)


def load_adaptation(path: Path, table: LatencyTable, space: SearchSpace,
                    fingerprint: dict[str, Any]) -> Adaptation | None:
    """The cached adaptation in ``path`` when it is of this table, space and fingerprint."""
    from hwnas.io import read_json

    if not path.exists():
        return None
    doc = read_json(path, "table adaptation")
    if doc.get("format") != FORMAT or not isinstance(doc.get("adaptation"), dict):
        raise HwnasError(f"{path} is not an hwnas table adaptation (no format={FORMAT!r}); remove it")
    a = doc["adaptation"]
    if doc.get("format_version") != FORMAT_VERSION:
        return None
    if (a.get("fingerprint", {}).get("id") != fingerprint["id"] or a.get("space") != space_tag(space)
            or a.get("table_stamp") != _table_stamp(table)):
        return None
    try:
        out = Adaptation(**{k: v for k, v in a.items() if k in Adaptation.__dataclass_fields__})
    except TypeError as exc:
        raise HwnasError(f"table adaptation {path} is damaged ({exc}); remove it") from None
    if not (isinstance(out.scale, (int, float)) and out.scale > 0):
        raise HwnasError(f"table adaptation {path}: scale {out.scale!r} must be a number > 0; remove it")
    out.path, out.reused = str(path), True
    return out


#: calibration models an adaptation chooses from, simplest first: the table's own calibration
#: times a factor; that plus an offset; scale, per-op and offset refitted on the measurements alone
MODELS = ("scaled", "scaled+offset", "refit")


def _fit(model: str, raw: np.ndarray, nops: np.ndarray, y: np.ndarray, s0: float, p0: float,
         o0: float) -> tuple[float, float, float]:
    """Coefficients ``(scale, per_op, offset)`` of ``model`` by least squares on *relative* errors
    (each row divided by its measured latency: a fast subnet counts as much as a slow one)."""
    old = s0 * raw + p0 * nops + o0
    w = 1.0 / y
    if model == "scaled":
        k = float(np.sum(old * w) / np.sum((old * w) ** 2))
        return k * s0, k * p0, k * o0
    if model == "scaled+offset":
        design = np.stack([old, np.ones_like(old)], 1)
    else:
        design = np.stack([raw, nops, np.ones_like(raw)], 1)
    coef, *_ = np.linalg.lstsq(design * w[:, None], np.ones_like(y), rcond=None)
    if model == "scaled+offset":
        k, c = float(coef[0]), float(coef[1])
        return k * s0, k * p0, k * o0 + c
    return float(coef[0]), float(coef[1]), float(coef[2])


def choose_calibration(raw: np.ndarray, nops: np.ndarray, measured: np.ndarray,
                       before: Any) -> tuple[tuple[float, float, float], str]:
    """The calibration ``(scale, per_op, offset)`` of the model of :data:`MODELS` with the lowest
    leave-one-out error on the measurements (a simpler one unless a more complex one is better by
    more than a percentage point), refitted on all of them. With a handful of subnets a full refit
    of three coefficients can trade the per-op term against the scale and mispredict subnets
    unlike the measured ones, which is where a search goes; scaling the table's own calibration
    (fitted on many subnets where the table was made) keeps its shape."""
    s0, p0, o0 = before.scale, before.per_op, before.offset
    n = len(measured)
    best, best_err = "scaled", np.inf
    for model in MODELS:
        if model != "scaled" and n < 5:
            break
        if model == "refit" and np.linalg.matrix_rank(np.stack([raw, nops, np.ones_like(raw)], 1)) < 3:
            break
        errs = []
        for i in range(n):
            keep = np.arange(n) != i
            sc, po, of = _fit(model, raw[keep], nops[keep], measured[keep], s0, p0, o0)
            pred = sc * raw[i] + po * nops[i] + of
            errs.append(abs(pred - measured[i]) / measured[i])
        err = float(np.mean(errs))
        if err < best_err - 0.01:
            best, best_err = model, err
    coef = _fit(best, raw, nops, measured, s0, p0, o0)
    if best != "scaled" and (coef[0] <= 0 or np.any(coef[0] * raw + coef[1] * nops + coef[2] <= 0)):
        best, coef = "scaled", _fit("scaled", raw, nops, measured, s0, p0, o0)
    return coef, best


def quantile_genes(space: SearchSpace, n: int, predict: Any, seed: int, pool: int = 400) -> list[tuple[int, ...]]:
    """``n`` distinct random subnets whose predicted latencies sit at evenly spaced quantiles (2 %
    to 98 %) of random subnets' predictions: the range a search explores, where the adaptation
    must be right (the extremes of the space, which the table's own calibration covered, are
    rarely chosen)."""
    rng = np.random.default_rng(seed)
    cand = list(dict.fromkeys(tuple(int(v) for v in g) for g in space.sample_many(rng, max(pool, 20 * n))))
    if len(cand) < n:
        raise HwnasError(f"cannot find {n} distinct subnets of space {space.name!r} to measure")
    pred = np.asarray(predict(np.asarray(cand)), dtype=np.float64)
    free = np.ones(len(cand), dtype=bool)
    chosen = []
    for t in np.quantile(pred, np.linspace(0.02, 0.98, n)):
        idx = np.flatnonzero(free)
        i = int(idx[np.argmin(np.abs(pred[idx] - t))])
        free[i] = False
        chosen.append(cand[i])
    return chosen


def adapt_table(table: LatencyTable, space: SearchSpace, runner: Any, *, threads: int,
                root: str | Path | None = None, n: int = ADAPT_SUBNETS, seed: int = ADAPT_SEED,
                canary: bool = True, on_progress=None) -> Adaptation | None:
    """Adapt ``table`` to the machine ``runner`` measures on; ``None`` when the table was measured
    there (nothing to adapt). Reuses the cached adaptation of this fingerprint, else measures ``n``
    subnets spread over the table's predicted range (stored end-to-end measurements of this machine
    are reused), fits the calibration and caches it."""
    import time

    from hwnas.checkpoint import version_stamp
    from hwnas.io import atomic_write_json
    from hwnas.latency.fingerprint import runner_fingerprint
    from hwnas.latency.predict import LatencyPredictor, fit_calibration
    from hwnas.latency.predictors.fitting import e2e_store_path
    from hwnas.latency.validate import EndToEndStore, measure_subnets, table_sustained_s

    if n < 3:
        raise HwnasError(f"adapting a table needs at least 3 measured subnets, got {n}")
    fp = runner_fingerprint(runner)
    if not needs_adapting(table, fp, space):
        return None
    path = adaptation_path(table, space, root)
    cached = load_adaptation(path, table, space, fp)
    if cached is not None:
        return cached
    from hwnas.latency.fingerprint import describe
    from hwnas.ui import note

    have = table.metadata.get("fingerprint")
    where = (f"was measured on {describe(have)}" if isinstance(have, dict) else
             "carries no fingerprint (made before hwnas recorded where it measures), so it counts as another computer's")
    note(f"{table.path} {where}; adapting it to this computer: {n} subnets measured end to end "
         f"(--no-adapt to skip)", label="latency")
    t0 = time.perf_counter()
    raw_pred = LatencyPredictor(table, space, calibrated=False)
    before = LatencyPredictor(table, space)
    genes = quantile_genes(space, n, raw_pred.raw, seed)
    runtime, precision = table.runtime_precision
    store = EndToEndStore(e2e_store_path(table.metadata["device"], space, runtime, writable_root(root), precision))
    measured = measure_subnets(runner, space, genes, runtime, store, threads=threads, precision=precision,
                               canary=canary, sustained_s=table_sustained_s(table), on_progress=on_progress)
    X = np.asarray(genes)
    raw, nops = raw_pred.raw(X), raw_pred.n_ops(X)
    old = before(X)
    (scale, per_op, offset), model = choose_calibration(raw, nops, measured, before)
    fitted = scale * raw + per_op * nops + offset
    out = Adaptation(
        table=str(table.path), space=space_tag(space), fingerprint=fp, scale=scale, per_op_ms=per_op,
        offset_ms=offset, speed_ratio=float(np.median(measured / old)),
        mape_before=float(np.mean(np.abs(old - measured) / measured)),
        mape_after=float(np.mean(np.abs(fitted - measured) / measured)),
        genes=[list(g) for g in genes], measured_ms=[float(v) for v in measured],
        table_stamp=_table_stamp(table), path=str(path), seconds=time.perf_counter() - t0, model=model)
    atomic_write_json(path, {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": version_stamp(),
                             "adaptation": out.to_dict()})
    return out


def adapt_for_device(device: str, table: LatencyTable, space: SearchSpace, root: str | Path | None = None,
                     *, canary: bool = True, on_progress=None) -> Adaptation | None:
    """:func:`adapt_table` for the device profile ``device`` when it is this computer (host);
    ``None`` for other devices (measuring them needs the device: ``hwnas lut calibrate``),
    including a device with tables but no profile (tables imported or fitted from a CSV), which
    cannot be this computer."""
    from hwnas.devices.profiles import list_profiles, load_profile
    from hwnas.latency.build import device_runner

    if device not in list_profiles() and not Path(device).suffix == ".toml":
        return None
    profile = load_profile(device)
    if not profile.is_local:
        return None
    runner = device_runner(profile, *table.runtime_precision)
    return adapt_table(table, space, runner, threads=profile.cpu.default_threads, root=root, canary=canary,
                       on_progress=on_progress)
