"""``uniform``: SPOS single-path uniform sampling (SPOS Sec. 3.2): uniformly drawn paths per batch.

``paths`` (default 1, SPOS) paths are drawn independently per step and their cross-entropies
averaged into one loss (one backward). SparseNAS trains its proxy supernet this way with two paths
per batch (SparseNAS Sec. 5.2.1: "randomly samples two sub-networks for optimization in one data
batch"; Eq. (2) with ``n_sub = 2``). ``resolutions`` (e.g. ``12,16,20``) resizes each step's batch
to one of them drawn at random (Once-for-All elastic resolution, :mod:`.resolution`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from hwnas.train.strategies.base import PathRun, RunContext, Strategy, TrainModel
from hwnas.train.strategies.options import StrategyOptions
from hwnas.train.strategies.registry import register_strategy
from hwnas.train.strategies.resolution import StepResolution, resolution_check


@dataclass(frozen=True)
class UniformOptions(StrategyOptions):
    """``paths``: uniformly drawn paths per step (1: SPOS; 2: the SparseNAS proxy supernet);
    ``resolutions``: input resolutions drawn per step (Once-for-All; empty: the space's only)."""

    paths: int = 1
    resolutions: str = ""

    def checks(self) -> list[tuple[bool, str]]:
        return [(self.paths >= 1, f"paths must be >= 1, got {self.paths}"), resolution_check(self.resolutions)]


@register_strategy
class UniformStrategy(Strategy):
    """SPOS Sec. 3.2: every step trains ``paths`` paths drawn uniformly from the space."""

    name: ClassVar[str] = "uniform"
    summary: ClassVar[str] = ("uniformly sampled paths per step (SPOS Sec. 3.2; paths=2: the SparseNAS "
                              "proxy supernet)")
    Options: ClassVar[type[StrategyOptions]] = UniformOptions

    def __init__(self, options: UniformOptions, run: RunContext) -> None:
        super().__init__(options, run)
        self.resolution = StepResolution(options.resolutions)

    def paths(self, step: int) -> list[PathRun]:
        runs = [PathRun(self.space.sample(self.rng)) for _ in range(self.options.paths)]
        self.resolution.draw(self.rng)
        return runs

    def forward(self, model: TrainModel, x: torch.Tensor, runs: Sequence[PathRun]) -> list[torch.Tensor]:
        return super().forward(model, self.resolution(x), runs)
