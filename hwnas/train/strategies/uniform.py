"""``uniform``: SPOS single-path uniform sampling (SPOS Sec. 3.2): one uniformly drawn path per batch."""

from __future__ import annotations

from typing import ClassVar

from hwnas.train.strategies.base import PathRun, Strategy
from hwnas.train.strategies.registry import register_strategy


@register_strategy
class UniformStrategy(Strategy):
    """SPOS Sec. 3.2: every step trains one path drawn uniformly from the space."""

    name: ClassVar[str] = "uniform"
    summary: ClassVar[str] = "one uniformly sampled path per step (SPOS Sec. 3.2)"

    def paths(self, step: int) -> list[PathRun]:
        return [PathRun(self.space.sample(self.rng))]
