"""``uniform``: SPOS single-path uniform sampling (SPOS Sec. 3.2): uniformly drawn paths per batch.

``paths`` (default 1, SPOS) paths are drawn independently per step and their cross-entropies
averaged into one loss (one backward). SparseNAS trains its proxy supernet this way with two paths
per batch (SparseNAS Sec. 5.2.1: "randomly samples two sub-networks for optimization in one data
batch"; Eq. (2) with ``n_sub = 2``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hwnas.train.strategies.base import PathRun, Strategy
from hwnas.train.strategies.options import StrategyOptions
from hwnas.train.strategies.registry import register_strategy


@dataclass(frozen=True)
class UniformOptions(StrategyOptions):
    """``paths``: uniformly drawn paths per step (1: SPOS; 2: the SparseNAS proxy supernet)."""

    paths: int = 1

    def checks(self) -> list[tuple[bool, str]]:
        return [(self.paths >= 1, f"paths must be >= 1, got {self.paths}")]


@register_strategy
class UniformStrategy(Strategy):
    """SPOS Sec. 3.2: every step trains ``paths`` paths drawn uniformly from the space."""

    name: ClassVar[str] = "uniform"
    summary: ClassVar[str] = ("uniformly sampled paths per step (SPOS Sec. 3.2; paths=2: the SparseNAS "
                              "proxy supernet)")
    Options: ClassVar[type[StrategyOptions]] = UniformOptions

    def paths(self, step: int) -> list[PathRun]:
        return [PathRun(self.space.sample(self.rng)) for _ in range(self.options.paths)]
