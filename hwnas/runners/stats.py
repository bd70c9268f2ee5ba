"""Measurement hygiene: robust summaries, outlier rejection, repetition pooling and cool-down.

Phone latencies are noisy: DVFS ramps, thermal throttling, background work and the odd page fault
produce long tails. hwnas therefore reports the median next to the mean, rejects outliers with
Tukey's IQR fences (or the MAD modified z-score of Iglewicz & Hoaglin), repeats a measurement
several times with a cool-down in between, and pools the repetitions.

Nothing here sleeps or reads a clock directly: :func:`cool_down` takes ``sleep`` and ``clock``
callables, so tests run instantly and deterministically.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from hwnas.errors import HwnasError

OUTLIER_METHODS: tuple[str, ...] = ("iqr", "mad", "none")
IQR_K = 1.5
"""Tukey's fences: outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR] is an outlier."""
MAD_Z = 3.5
"""Iglewicz & Hoaglin: modified z-score |x - median| / (1.4826 MAD) above 3.5 is an outlier."""
MAD_TO_SIGMA = 1.4826
MIN_RELATIVE_SPREAD = 0.01
"""Spread floor for outlier rejection, as a fraction of the median (see :func:`reject_outliers`)."""
PERCENTILES: tuple[int, ...] = (5, 25, 75, 90, 95, 99)
_MIN_POLL_S = 0.01  # never busy-loop on the temperature sensor


@dataclass(frozen=True)
class LatencySummary:
    """Summary of latency samples (any unit; runners use milliseconds).

    Built from raw samples by :func:`summarize` (every field set) or from what a benchmark tool
    printed (only the fields the tool reports; the rest None).
    """

    count: int
    mean: float
    median: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    iqr: float | None = None
    mad: float | None = None
    percentiles: Mapping[str, float] = field(default_factory=dict)
    repetitions: int = 1

    @property
    def relative_spread(self) -> float | None:
        """IQR / median (or std / mean): a unit-free noise figure; 0.05 means 5 %."""
        if self.iqr is not None and self.median:
            return self.iqr / self.median
        if self.std is not None and self.mean:
            return self.std / self.mean
        return None


@dataclass(frozen=True)
class OutlierSplit:
    """Samples split by an outlier rule; order of the input is kept within each part."""

    kept: tuple[float, ...]
    rejected: tuple[float, ...]


def summarize(samples: Sequence[float]) -> LatencySummary:
    """Mean, median, sample std (ddof=1), min, max, IQR, MAD and p5..p99 of ``samples``."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise HwnasError("cannot summarize zero latency samples (runs must be at least 1)")
    q = np.percentile(x, PERCENTILES)
    pct = {f"p{p}": float(v) for p, v in zip(PERCENTILES, q, strict=True)}
    median = float(np.median(x))
    return LatencySummary(
        count=int(x.size), mean=float(x.mean()), median=median,
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0, min=float(x.min()), max=float(x.max()),
        iqr=pct["p75"] - pct["p25"], mad=float(np.median(np.abs(x - median))),
        percentiles={"p50": median, **pct},
    )


def reject_outliers(samples: Sequence[float], method: str = "iqr", k: float | None = None) -> OutlierSplit:
    """Split ``samples`` into kept and rejected values.

    ``iqr``: Tukey's fences with factor ``k`` (default 1.5). ``mad``: modified z-score above ``k``
    (default 3.5). ``none``: keep everything. The spread (IQR or MAD) is floored at 1 % of the
    median, so that when most runs are identical (spread zero) a far-off run is still rejected
    while runs within a percent of the rest are always kept.
    """
    if method not in OUTLIER_METHODS:
        raise HwnasError(f"outlier method {method!r} is not allowed; allowed: {', '.join(OUTLIER_METHODS)}")
    values = tuple(float(v) for v in samples)
    if method == "none" or len(values) < 3:
        return OutlierSplit(values, ())
    x = np.asarray(values)
    med = float(np.median(x))
    floor = MIN_RELATIVE_SPREAD * abs(med)
    if method == "iqr":
        q1, q3 = np.percentile(x, [25, 75])
        spread = max(float(q3 - q1), floor)
        factor = IQR_K if k is None else k
        keep = (x >= q1 - factor * spread) & (x <= q3 + factor * spread)
    else:
        spread = max(float(np.median(np.abs(x - med))), floor)
        limit = MAD_Z if k is None else k
        keep = np.abs(x - med) <= limit * MAD_TO_SIGMA * spread
    return OutlierSplit(tuple(x[keep].tolist()), tuple(x[~keep].tolist()))


def robust_summary(samples: Sequence[float], method: str = "iqr") -> tuple[LatencySummary, int]:
    """Reject outliers, then summarize what is left. Returns the summary and how many were dropped."""
    split = reject_outliers(samples, method)
    return summarize(split.kept), len(split.rejected)


def combine_summaries(summaries: Sequence[LatencySummary], reject: str = "iqr") -> LatencySummary:
    """Pool repetitions of one measurement into one summary.

    With four or more repetitions, whole repetitions whose mean is an outlier among the
    repetition means are dropped first (a throttled or disturbed repetition). Then: count is the
    total, the mean is count-weighted, the std is the pooled std (within- plus between-repetition
    variance), min/max are the extremes, and median / IQR / MAD / percentiles are the medians of
    the per-repetition values (an approximation: raw samples are not always available).
    """
    if not summaries:
        raise HwnasError("cannot combine zero repetitions")
    reps = list(summaries)
    if len(reps) >= 4 and reject != "none":
        kept_means = set(reject_outliers([s.mean for s in reps], reject).kept)
        reps = [s for s in reps if s.mean in kept_means] or reps
    if len(reps) == 1:
        return replace(reps[0], repetitions=1)
    counts = np.array([s.count for s in reps], dtype=float)
    means = np.array([s.mean for s in reps], dtype=float)
    total = counts.sum()
    mean = float((counts * means).sum() / total)
    stds = _all_known([s.std for s in reps])
    std: float | None = None
    if stds is not None and total > 1:
        within = float(sum((c - 1) * sd**2 for c, sd in zip(counts, stds, strict=True)))
        between = float((counts * (means - mean) ** 2).sum())
        std = math.sqrt((within + between) / (total - 1))

    def med_of(values: list[float | None]) -> float | None:
        known = _all_known(values)
        return float(np.median(known)) if known else None

    mins, maxs = _all_known([s.min for s in reps]), _all_known([s.max for s in reps])
    keys = [k for k in reps[0].percentiles if all(k in s.percentiles for s in reps)]
    return LatencySummary(
        count=int(total), mean=mean, median=med_of([s.median for s in reps]), std=std,
        min=min(mins) if mins else None, max=max(maxs) if maxs else None,
        iqr=med_of([s.iqr for s in reps]), mad=med_of([s.mad for s in reps]),
        percentiles={k: float(np.median([s.percentiles[k] for s in reps])) for k in keys},
        repetitions=len(reps),
    )


def _all_known(values: list[float | None]) -> list[float] | None:
    """The values when none is None, else None (a field some repetition did not report)."""
    known = [v for v in values if v is not None]
    return known if len(known) == len(values) else None


# --------------------------------------------------------------------------------------------
# Cool-down


@dataclass(frozen=True)
class CoolDownResult:
    """What a cool-down did: reached the threshold, timed out, or fell back to a fixed pause."""

    reached: bool
    waited_s: float
    start_c: float | None
    end_c: float | None
    reads: int
    fixed_pause: bool


def cool_down(
    read_temp_c: Callable[[], float | None] | None,
    *,
    threshold_c: float | None,
    max_wait_s: float,
    poll_s: float,
    fixed_pause_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> CoolDownResult:
    """Wait until the device is cooler than ``threshold_c``, polling ``read_temp_c``.

    Stops when the temperature is at or below the threshold (``reached``) or after ``max_wait_s``
    (not reached: the caller records the temperature and goes on; a device that never cools must
    not block a profiling run forever). When there is no reader, no threshold, or the reader
    returns None (sensor not readable), it sleeps ``fixed_pause_s`` instead.
    """
    start = clock()

    def fixed(start_c: float | None, reads: int) -> CoolDownResult:
        if fixed_pause_s > 0:
            sleep(fixed_pause_s)
        return CoolDownResult(False, clock() - start, start_c, None, reads, True)

    if read_temp_c is None or threshold_c is None:
        return fixed(None, 0)
    temp = read_temp_c()
    reads = 1
    if temp is None:
        return fixed(None, reads)
    first = temp
    while temp > threshold_c:
        elapsed = clock() - start
        if elapsed >= max_wait_s:
            return CoolDownResult(False, elapsed, first, temp, reads, False)
        sleep(max(_MIN_POLL_S, min(poll_s, max_wait_s - elapsed)))
        reading = read_temp_c()
        reads += 1
        if reading is None:
            return fixed(first, reads)
        temp = reading
    return CoolDownResult(True, clock() - start, first, temp, reads, False)
