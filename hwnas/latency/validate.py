"""End-to-end measurements of whole subnets: calibration of a table and its validation.

* :func:`calibrate` measures a few subnets end to end (by default 8 random + smallest + largest) and
  fits ``measured = scale * sum(op medians) + per_op * n_ops + offset`` by least squares: the
  per-device correction for fusion across ops and per-inference overhead (nn-Meter, Zhang et al.
  2021).
* :func:`validate` measures N *other* random subnets (a different seed: held out) and reports MAPE,
  the fraction within +-10 %, Kendall tau, and a scatter plot saved next to the table.

End-to-end measurement runs in two phases: every subnet is exported first (cached files, see
:class:`~hwnas.latency.opmodels.SubnetModelCache`), then all are measured in :data:`E2E_ROUNDS`
round-robin rounds, and each subnet keeps its quietest round's median, as table entries do
(:func:`hwnas.latency.profile.merge_round`). Measuring takes seconds on the host, so a
disturbance (another job, a DVFS ramp) hits one round of a few subnets instead of whole subnets,
and no export competes for the CPU while models are timed. Every round of every subnet is
written atomically to ``<table>.<tag>.e2e.json``, so an interrupted calibration or validation
resumes without re-measuring.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json, read_json
from hwnas.latency.opmodels import SubnetModelCache
from hwnas.latency.predict import LatencyPredictor, fit_calibration
from hwnas.latency.table import LatencyTable, now_iso, space_tag
from hwnas.runners.quiet import measure_guarded, runner_canary
from hwnas.spaces.base import SearchSpace

CALIBRATION_SEED = 1
VALIDATION_SEED = 12345
#: end-to-end measurement rounds per subnet (round-robin over the subnets; the quietest is kept)
E2E_ROUNDS = 5


def _store_path(table: LatencyTable, tag: str) -> Path:
    if table.path is None:
        raise ValueError("table has no path")
    return table.path.with_name(f"{table.path.stem}.{tag}.e2e.json")


#: top-level key of an end-to-end store holding the fingerprints its records name (the other
#: keys are genes joined by ',')
FINGERPRINTS_KEY = "fingerprints"


class EndToEndStore:
    """Measured end-to-end latencies by genes, persisted next to the table.

    Every record names the fingerprint of the machine that measured it
    (:mod:`hwnas.latency.fingerprint`). Once :meth:`bind` has told the store where it measures,
    records of another fingerprint (on the host also records without one) are invisible: never
    reused, and overwritten when the subnet is measured here."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        self.fingerprint: dict[str, Any] | None = None
        if path.exists():
            self.data = read_json(path, "end-to-end measurements")

    def _fingerprint_of(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        fid = rec.get("fingerprint")
        if not fid:
            return None
        return self.data.get(FINGERPRINTS_KEY, {}).get(fid) or {"id": fid}

    def _visible(self, rec: dict[str, Any] | None) -> bool:
        from hwnas.latency.fingerprint import same_machine

        return rec is not None and (self.fingerprint is None
                                    or same_machine(self._fingerprint_of(rec), self.fingerprint))

    def bind(self, fingerprint: dict[str, Any], genes_list: list[tuple[int, ...]] | None = None) -> str | None:
        """Measure as ``fingerprint`` from now on; the line saying which stored records of
        ``genes_list`` (default: all) are skipped as another machine's, or None."""
        from hwnas.latency.fingerprint import skipped_message

        self.fingerprint = fingerprint
        keys = (self.records() if genes_list is None
                else dict.fromkeys(",".join(map(str, g)) for g in genes_list))
        foreign = [self._fingerprint_of(self.data[k]) for k in keys
                   if k in self.data and not self._visible(self.data[k])]
        return skipped_message("end-to-end measurements", self.path, foreign, fingerprint)

    def records(self) -> dict[str, dict[str, Any]]:
        """Every stored record by genes key (whatever its fingerprint)."""
        return {k: v for k, v in self.data.items() if k != FINGERPRINTS_KEY}

    def get(self, genes: tuple[int, ...]) -> dict[str, Any] | None:
        rec = self.data.get(",".join(map(str, genes)))
        return rec if self._visible(rec) else None

    def put(self, genes: tuple[int, ...], record: dict[str, Any]) -> None:
        if self.fingerprint is not None:
            record = {**record, "fingerprint": self.fingerprint["id"]}
            self.data.setdefault(FINGERPRINTS_KEY, {})[self.fingerprint["id"]] = self.fingerprint
        self.data[",".join(map(str, genes))] = record
        atomic_write_json(self.path, self.data)

    def complete(self, genes: tuple[int, ...], rounds: int) -> bool:
        """Measured in at least ``rounds`` rounds (records without rounds count as complete)."""
        rec = self.get(genes)
        return rec is not None and len(rec.get("rounds_ms", [rec["median_ms"]] * rounds)) >= rounds


def measure_subnets(runner: Any, space: SearchSpace, genes_list: list[tuple[int, ...]], runtime: str,
                    store: EndToEndStore, *, threads: int, warmup: int = 10, runs: int = 30,
                    precision: str | None = None,
                    rounds: int = E2E_ROUNDS, cache: SubnetModelCache | None = None,
                    canary: bool = True, canary_max_wait_s: float = 60.0,
                    sustained_s: float = 0.0, on_progress=None) -> np.ndarray:
    """End-to-end latency (ms) of each subnet, measured with ``runner`` (cached in ``store``).

    Exports every subnet not yet measured, then measures them ``rounds`` times round-robin; a
    subnet's latency is its quietest round's median. With ``canary`` the rounds run in
    blocks between checks of the largest subnet (:mod:`hwnas.runners.quiet`), so blocks measured
    while the device was disturbed are measured again. ``on_progress(done, total)`` counts exports
    and measurements. ``sustained_s`` > 0 measures sustained latency (that many seconds of
    continuous inference before each measurement); ``store`` must then be a sustained table's.
    Stored measurements of another machine (another fingerprint, see
    :mod:`hwnas.latency.fingerprint`) are not reused: one line on stderr says how many were
    skipped and whose they were.
    """
    from hwnas.latency.fingerprint import runner_fingerprint
    from hwnas.runners.base import MeasureConfig
    from hwnas.ui import note

    cfg = MeasureConfig(threads=threads, warmup=warmup, runs=runs, sustained_s=sustained_s)
    cache = cache or SubnetModelCache(space, runtime, precision=precision)
    skipped = store.bind(runner_fingerprint(runner), [tuple(g) for g in genes_list])
    if skipped:
        note(skipped)
    todo = list(dict.fromkeys(tuple(g) for g in genes_list if not store.complete(tuple(g), rounds)))
    total, done = len(todo) * (1 + rounds), 0

    def progress() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, total)

    preflight = getattr(runner, "preflight", None)
    if todo and preflight is not None:
        preflight()  # the device answers and has its tool, before any subnet is exported
    paths = cache.get_many(todo, on_each=lambda g: progress())
    guard = None
    if canary and todo:
        from hwnas.cost import CostModel

        macs = CostModel(space)(np.asarray(todo))["macs"]
        guard = runner_canary(runner, paths[todo[int(np.argmax(macs))]], cfg, max_wait_s=canary_max_wait_s)

    def commit(g: tuple[int, ...], m: Any) -> None:
        rec = store.get(g) or {}
        got = list(rec.get("rounds_ms", [])) + [m.center_ms]
        contended = int(rec.get("contended_rounds", 0)) + int(bool(m.extra.get("contended_repetitions", 0)))
        store.put(g, {"median_ms": float(min(got)), "rounds_ms": got,
                      "spread": float((max(got) - min(got)) / min(got)), "runs": m.runs,
                      "contended_rounds": contended, "measured": now_iso(),
                      **({"sustained_s": sustained_s} if sustained_s else {})})
        progress()

    for r in range(rounds):
        left = [g for g in todo if len((store.get(g) or {}).get("rounds_ms", [])) <= r]
        measure_guarded(left, lambda g: runner.measure(paths[g], cfg), commit, guard)
    return np.asarray([store.get(tuple(g))["median_ms"] for g in genes_list], dtype=np.float64)


def table_sustained_s(table: LatencyTable) -> float:
    """Seconds of continuous inference before each measurement of ``table`` (0: burst latency)."""
    return float(table.metadata.get("sustained_s") or 0.0)


def _archs(space: SearchSpace, n: int, seed: int, extremes: bool) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(n)]
    if extremes:
        archs += [space.smallest(), space.largest()]
    return archs


def calibrate(table: LatencyTable, space: SearchSpace, runner: Any, *, n: int = 8, threads: int,
              seed: int = CALIBRATION_SEED, cache: SubnetModelCache | None = None,
              canary: bool = True, on_progress=None) -> dict[str, Any]:
    """Fit and store the table's calibration for ``space`` from ``n`` + 2 end-to-end measurements."""
    if n < 1:
        raise HwnasError(f"calibration needs at least 1 random subnet, got n={n}")
    pred = LatencyPredictor(table, space, calibrated=False)
    archs = _archs(space, n, seed, extremes=True)
    tag = space_tag(space)
    measured = measure_subnets(runner, space, archs, table.runtime_precision[0],
                               EndToEndStore(_store_path(table, tag)), threads=threads, cache=cache,
                               precision=table.runtime_precision[1], sustained_s=table_sustained_s(table),
                               canary=canary, on_progress=on_progress)
    raw = pred.raw(np.asarray(archs))
    nops = pred.n_ops(np.asarray(archs))
    scale, per_op, offset = fit_calibration(raw, nops, measured)
    fitted = scale * raw + per_op * nops + offset
    from hwnas.latency.fingerprint import runner_fingerprint

    info = {"n": len(archs), "seed": seed, "per_op_ms": per_op,
            "mape_on_fit": float(np.mean(np.abs(fitted - measured) / measured)),
            "fingerprint": runner_fingerprint(runner)}
    table.set_calibration(tag, scale, offset, **info)
    table.save()
    return table.calibrations[tag]


@dataclass
class ValidationReport:
    device: str
    space: str
    runtime: str
    n: int
    mape: float
    within_10pct: float
    kendall_tau: float
    spearman: float
    calibrated: bool
    scale: float
    offset_ms: float
    plot: str
    created: str
    fingerprint: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate(table: LatencyTable, space: SearchSpace, runner: Any, *, n: int = 100, threads: int,
             seed: int = VALIDATION_SEED, cache: SubnetModelCache | None = None,
             canary: bool = True, on_progress=None) -> ValidationReport:
    """Measure ``n`` held-out random subnets end to end and compare with the table's prediction."""
    from scipy.stats import kendalltau, spearmanr

    from hwnas.latency.fingerprint import runner_fingerprint

    if n < 3:
        raise HwnasError(f"validation needs at least 3 subnets, got n={n}")
    pred = LatencyPredictor(table, space)
    archs = _archs(space, n, seed, extremes=False)
    tag = space_tag(space)
    measured = measure_subnets(runner, space, archs, table.runtime_precision[0],
                               EndToEndStore(_store_path(table, tag)), threads=threads, cache=cache,
                               precision=table.runtime_precision[1], sustained_s=table_sustained_s(table),
                               canary=canary, on_progress=on_progress)
    predicted = pred(np.asarray(archs))
    rel = np.abs(predicted - measured) / measured
    tau = float(kendalltau(predicted, measured).statistic)
    rho = float(spearmanr(predicted, measured).statistic)
    assert table.path is not None
    plot = table.path.with_name(f"{table.path.stem}.{tag}.validation.png")
    _plot(predicted, measured, plot, f"{table.metadata['device']} {tag} {table.metadata['runtime']}: "
          f"within 10%: {np.mean(rel <= 0.10):.0%}, tau {tau:.3f}")
    report = ValidationReport(
        device=table.metadata["device"], space=tag, runtime=table.metadata["runtime"], n=n,
        mape=float(rel.mean()), within_10pct=float(np.mean(rel <= 0.10)), kendall_tau=tau,
        spearman=rho, calibrated=pred.is_calibrated, scale=pred.scale, offset_ms=pred.offset,
        plot=str(plot), created=now_iso(), fingerprint=runner_fingerprint(runner))
    atomic_write_json(table.path.with_name(f"{table.path.stem}.{tag}.validation.json"),
                      {**report.to_dict(), "measured_ms": measured.tolist(),
                       "predicted_ms": predicted.tolist(), "genes": [list(a) for a in archs]})
    return report


def _plot(predicted: np.ndarray, measured: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwnas.io import atomic_write

    fig, ax = plt.subplots(figsize=(5, 5))
    lo = float(min(predicted.min(), measured.min())) * 0.9
    hi = float(max(predicted.max(), measured.max())) * 1.1
    xs = np.linspace(lo, hi, 10)
    ax.plot(xs, xs, "k-", lw=1, label="y = x")
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="0.85", label="+-10 %")
    ax.scatter(measured, predicted, s=14)
    ax.set_xlabel("measured end-to-end latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title, fontsize=8)
    ax.legend(loc="upper left")
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
