"""Measurement hygiene: summaries, outlier rejection, pooling of repetitions and the cool-down loop
(with a fake clock: nothing here sleeps)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.runners.stats import (
    LatencySummary,
    combine_summaries,
    cool_down,
    reject_outliers,
    robust_summary,
    summarize,
)


def test_summarize_known_values() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (s.count, s.mean, s.median, s.min, s.max) == (5, 22.0, 3.0, 1.0, 100.0)
    assert s.std == pytest.approx(np.std([1, 2, 3, 4, 100], ddof=1))
    assert s.iqr == 2.0  # p75 = 4, p25 = 2
    assert s.mad == 1.0  # median of |x - 3| = [2, 1, 0, 1, 97]
    assert s.percentiles["p50"] == 3.0 and s.percentiles["p95"] == pytest.approx(80.8)
    assert list(s.percentiles) == ["p50", "p5", "p25", "p75", "p90", "p95", "p99"]
    assert s.relative_spread == pytest.approx(2.0 / 3.0)
    assert summarize([7.0]).std == 0.0
    with pytest.raises(HwnasError, match="zero latency samples"):
        summarize([])


def test_iqr_rejects_a_spike_and_keeps_order() -> None:
    split = reject_outliers([10.0, 11.0, 10.5, 12.0, 50.0, 11.5, 10.2], "iqr")
    assert split.rejected == (50.0,)
    assert split.kept == (10.0, 11.0, 10.5, 12.0, 11.5, 10.2)


def test_mad_rejects_both_tails() -> None:
    data = [10.0, 10.1, 9.9, 10.2, 9.8, 10.0, 3.0, 30.0]
    split = reject_outliers(data, "mad")
    assert set(split.rejected) == {3.0, 30.0}
    assert len(split.kept) == 6
    assert reject_outliers(data, "mad", k=100).rejected == ()


def test_zero_spread_uses_a_one_percent_floor() -> None:
    assert reject_outliers([5.0, 5.0, 5.0, 5.0, 9.0], "iqr").rejected == (9.0,)  # IQR is zero
    assert reject_outliers([5.0, 5.0, 5.0, 9.0, 5.0], "mad").rejected == (9.0,)  # MAD is zero
    assert reject_outliers([5.0, 5.0, 5.0, 5.0, 5.02], "iqr").rejected == ()  # within 1 %
    assert reject_outliers([5.0, 5.0, 5.0, 5.0, 5.02], "mad").rejected == ()
    assert reject_outliers([0.0, 0.0, 0.0, 0.0], "iqr").rejected == ()


def test_no_rejection_when_disabled_or_too_few() -> None:
    assert reject_outliers([1.0, 1.0, 100.0, 1.0], "none").rejected == ()
    assert reject_outliers([1.0, 100.0], "iqr").rejected == ()
    with pytest.raises(HwnasError, match="allowed: iqr, mad, none"):
        reject_outliers([1.0, 2.0, 3.0], "zscore")


def test_robust_summary_counts_dropped_runs() -> None:
    summary, dropped = robust_summary([1.0, 1.1, 0.9, 1.0, 1.05, 9.0])
    assert dropped == 1
    assert summary.max == 1.1 and summary.count == 5


def test_pooled_repetitions_equal_the_concatenated_samples() -> None:
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(10, 1, 40), rng.normal(11, 2, 25), rng.normal(10.5, 0.5, 60)
    pooled = combine_summaries([summarize(a), summarize(b), summarize(c)])
    everything = np.concatenate([a, b, c])
    assert pooled.repetitions == 3 and pooled.count == 125
    assert pooled.mean == pytest.approx(everything.mean())
    assert pooled.std == pytest.approx(everything.std(ddof=1))  # exact pooled variance
    assert (pooled.min, pooled.max) == (everything.min(), everything.max())
    assert pooled.median == pytest.approx(np.median([np.median(a), np.median(b), np.median(c)]))


def test_a_disturbed_repetition_is_dropped() -> None:
    reps = [summarize([10.0, 10.2, 9.9]) for _ in range(4)] + [summarize([30.0, 31.0, 29.0])]
    pooled = combine_summaries(reps)
    assert pooled.repetitions == 4 and pooled.count == 12
    assert pooled.max == 10.2
    assert combine_summaries(reps, reject="none").repetitions == 5


def test_combining_tool_summaries_with_missing_fields() -> None:
    a = LatencySummary(count=50, mean=249.684, std=1.442, min=247.067, max=254.474)
    b = LatencySummary(count=50, mean=95.7883, min=93.066, max=99.49)
    pooled = combine_summaries([a, b])
    assert pooled.mean == pytest.approx((249.684 + 95.7883) / 2)
    assert pooled.std is None and pooled.median is None
    assert (pooled.min, pooled.max) == (93.066, 254.474)
    single = combine_summaries([a])
    assert single.mean == a.mean and single.repetitions == 1
    with pytest.raises(HwnasError):
        combine_summaries([])


# ---- cool-down -------------------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when ``sleep`` is called."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def reader(values: Iterable[float | None]):
    it = iter(values)
    return lambda: next(it)


def test_cool_down_polls_until_below_threshold() -> None:
    t = FakeTime()
    result = cool_down(reader([45.0, 43.0, 41.0, 39.5]), threshold_c=40.0, max_wait_s=300, poll_s=5,
                       fixed_pause_s=30, sleep=t.sleep, clock=t.clock)
    assert result.reached and not result.fixed_pause
    assert t.sleeps == [5, 5, 5] and result.waited_s == 15
    assert (result.start_c, result.end_c, result.reads) == (45.0, 39.5, 4)


def test_cool_down_gives_up_after_max_wait() -> None:
    t = FakeTime()
    result = cool_down(lambda: 50.0, threshold_c=40.0, max_wait_s=12, poll_s=5, fixed_pause_s=30,
                       sleep=t.sleep, clock=t.clock)
    assert not result.reached and not result.fixed_pause
    assert t.sleeps == [5, 5, 2] and result.waited_s == 12 and result.end_c == 50.0


def test_cool_device_does_not_wait() -> None:
    t = FakeTime()
    result = cool_down(lambda: 35.8, threshold_c=40.0, max_wait_s=300, poll_s=5, fixed_pause_s=30,
                       sleep=t.sleep, clock=t.clock)
    assert result.reached and t.sleeps == [] and result.reads == 1


def test_fixed_pause_without_a_temperature() -> None:
    t = FakeTime()
    no_reader = cool_down(None, threshold_c=40.0, max_wait_s=300, poll_s=5, fixed_pause_s=30,
                          sleep=t.sleep, clock=t.clock)
    assert no_reader.fixed_pause and t.sleeps == [30] and no_reader.waited_s == 30
    unreadable = cool_down(lambda: None, threshold_c=40.0, max_wait_s=300, poll_s=5, fixed_pause_s=20,
                           sleep=t.sleep, clock=t.clock)
    assert unreadable.fixed_pause and t.sleeps == [30, 20] and unreadable.reads == 1
    lost = cool_down(reader([48.0, None]), threshold_c=40.0, max_wait_s=300, poll_s=5, fixed_pause_s=10,
                     sleep=t.sleep, clock=t.clock)
    assert lost.fixed_pause and lost.start_c == 48.0 and t.sleeps[-2:] == [5, 10]
    no_threshold = cool_down(lambda: 99.0, threshold_c=None, max_wait_s=300, poll_s=5, fixed_pause_s=0,
                             sleep=t.sleep, clock=t.clock)
    assert no_threshold.fixed_pause and len(t.sleeps) == 4  # a zero pause does not sleep
