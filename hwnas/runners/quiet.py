"""A reference ("canary") model that tells when a device is disturbed, and measuring in guarded blocks.

Some disturbances leave no trace a runner can read: on a virtual machine the hypervisor takes the
CPU away, a phone's governor drops the clock, a background job starts on a core the profile does
not own. Such an episode can slow *every* measurement for tens of seconds while no other task is
runnable inside the machine, and a calibration fitted in that window is off on every subnet
validated later (figures from the development machine: docs/latency.md, "Measurement hygiene").

Latency only ever gets worse under a disturbance, so the fastest time a fixed reference model has
shown is a good estimate of the quiet machine. :class:`QuietGuard` measures that canary, and
:func:`measure_guarded` measures items in small blocks with a canary check before and after each
block: before, it waits until the canary is within ``tolerance`` of its best; after, a block whose
closing check failed is measured again, up to ``max_retries`` times (then its last attempt is
kept, so a device that never calms down still gets measured). Results are committed (written to
the table or the end-to-end store) only once their block is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: a canary more than this much slower than its best says the device is disturbed
DEFAULT_TOLERANCE = 0.05
#: canary measurements taken before the first block, to find the quiet level
BASELINE_SAMPLES = 3


@dataclass
class QuietGuard:
    """Measures a canary (``measure() -> ms``) and judges the device quiet or disturbed.

    ``tolerance`` is relative to the fastest canary seen, widened to twice the spread of the
    first :data:`BASELINE_SAMPLES` checks when the canary itself is that noisy (a tolerance below
    the canary's own noise would call every quiet check disturbed); ``pause_s`` is the wait
    between two checks while disturbed, ``max_wait_s`` the longest wait before measuring anyway
    (counted in ``gave_up``) and ``max_total_wait_s`` the most it waits in all: a device that
    never calms down is then measured as it is (noisier, but the job ends). ``sleep`` is
    injectable so tests run instantly.
    """

    measure: Callable[[], float]
    tolerance: float = DEFAULT_TOLERANCE
    pause_s: float = 1.0
    max_wait_s: float = 120.0
    max_total_wait_s: float = 180.0
    sleep: Callable[[float], None] = time.sleep
    history: list[float] = field(default_factory=list)
    waited_s: float = 0.0
    gave_up: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.tolerance < 1:
            raise ValueError(f"tolerance must lie in (0, 1), got {self.tolerance}")

    @property
    def best_ms(self) -> float | None:
        return min(self.history) if self.history else None

    @property
    def effective_tolerance(self) -> float:
        base = self.history[:BASELINE_SAMPLES]
        if len(base) < BASELINE_SAMPLES:
            return self.tolerance
        return max(self.tolerance, 2.0 * (max(base) - min(base)) / min(base))

    def check(self) -> bool:
        """Measure the canary once; True when it is within the tolerance of its best."""
        if not self.history:
            for _ in range(BASELINE_SAMPLES):
                self.history.append(float(self.measure()))
        value = float(self.measure())
        self.history.append(value)
        return value <= (1.0 + self.effective_tolerance) * min(self.history)

    def wait_quiet(self) -> bool:
        """Check until the canary is quiet or ``max_wait_s`` has passed; True when quiet."""
        waited = 0.0
        while not self.check():
            if waited >= self.max_wait_s or self.waited_s >= self.max_total_wait_s:
                self.gave_up += 1
                return False
            self.sleep(self.pause_s)
            waited += self.pause_s
            self.waited_s += self.pause_s
        return True

    def summary(self) -> dict[str, Any]:
        return {"canary_best_ms": self.best_ms, "canary_checks": len(self.history),
                "tolerance": round(self.effective_tolerance, 4),
                "waited_s": round(self.waited_s, 2), "gave_up": self.gave_up}


def measure_guarded(items: Sequence[T], measure: Callable[[T], R], commit: Callable[[T, R], None],
                    guard: QuietGuard | None, *, block: int = 8, max_retries: int = 3) -> int:
    """Measure every item, ``block`` at a time, between canary checks; ``commit`` each result.

    Without a guard every item is measured and committed in turn. With one, a block is measured
    once the canary is quiet and committed when the canary is still quiet afterwards; otherwise
    it is measured again (at most ``max_retries`` times, then committed as it is). Returns the
    number of blocks measured again.
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    if guard is None:
        for item in items:
            commit(item, measure(item))
        return 0
    redone = 0
    for start in range(0, len(items), block):
        chunk = items[start:start + block]
        for attempt in range(max_retries + 1):
            guard.wait_quiet()
            results = [measure(item) for item in chunk]
            if guard.check() or attempt == max_retries:
                break
            redone += 1
        for item, result in zip(chunk, results):
            commit(item, result)
    return redone


def runner_canary(runner: Any, model: Any, config: Any, **options: Any) -> QuietGuard:
    """A guard whose canary is ``model`` measured by ``runner`` with ``config`` (median ms)."""
    def measure() -> float:
        return runner.measure(model, config).center_ms

    return QuietGuard(measure, **options)
