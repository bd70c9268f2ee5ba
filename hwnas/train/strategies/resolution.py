"""Random input resolution per step (Once-for-All Sec. 3.2, elastic resolution), a strategy option.

Once-for-All trains its supernet with "the input image size ... randomly sampled" per batch
(its released code draws one resolution from a list for each step and resizes the batch to it),
so the subnets work at several resolutions. ``uniform`` and ``sparse`` take ``resolutions``
(``--opt resolutions=12,16,20``): each step draws one of them uniformly (from the strategy's
seeded generator, so runs repeat and resume) and resizes the batch bilinearly before every path of
the step, the teacher's included. Empty (the default) trains at the space's resolution only and
draws nothing, so existing runs are unchanged. Evaluation, BN recalibration, cost and latency stay
at the space's resolution.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: smallest resolution accepted (the stride-32 spaces reduce 8 px to 1 px before the head)
MIN_RESOLUTION = 8


def parse_resolutions(text: str) -> tuple[int, ...]:
    """``"12,16,20"`` -> ``(12, 16, 20)``; ``""`` -> ``()``; raises ValueError with the reason."""
    if not text.strip():
        return ()
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"resolutions must be comma-separated integers (e.g. 12,16,20), got {text!r}") from None
    bad = [v for v in vals if v < MIN_RESOLUTION]
    if bad:
        raise ValueError(f"resolutions must be >= {MIN_RESOLUTION} px, got {bad[0]} in {text!r}")
    return tuple(sorted(set(vals)))


def resolution_check(text: str) -> tuple[bool, str]:
    """(ok, why) for a strategy's ``checks()``."""
    try:
        parse_resolutions(text)
    except ValueError as exc:
        return False, str(exc)
    return True, ""


class StepResolution:
    """Draws the step's resolution and resizes batches to it."""

    def __init__(self, text: str) -> None:
        self.choices = parse_resolutions(text)
        self.current: int | None = None

    def draw(self, rng: np.random.Generator) -> None:
        if self.choices:
            self.current = int(self.choices[int(rng.integers(len(self.choices)))])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.current is None or tuple(x.shape[-2:]) == (self.current, self.current):
            return x
        return F.interpolate(x, size=(self.current, self.current), mode="bilinear", align_corners=False)
