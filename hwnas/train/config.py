"""Supernet training configuration: one frozen dataclass with the papers' defaults.

Defaults and where they come from:

* optimizer: SGD, momentum 0.9, Nesterov; cosine annealing from lr 0.12 at batch size 1024
  (GreedyNAS, seed 002, Sec. 5.1). Without ``lr`` the rate scales linearly with the global batch
  size: ``0.12 * batch_size * world_size / 1024`` (linear scaling rule, Goyal et al. 2017).
  The cosine schedule steps every iteration.
* weight decay 4e-5 on convolution / linear weights only, not on BN parameters or biases
  (SPOS, seed 003, trains "with the same settings as ShuffleNetV2", which uses 4e-5).
* label smoothing 0.1 (the SPOS reference implementation's ``CrossEntropyLabelSmooth``).
* 120 epochs (SPOS Sec. 4: "Supernet is trained for 120 epochs"); ``greedy`` may stop earlier.
* weight sharing ``independent``: one candidate block per choice, as SPOS and GreedyNAS train
  their supernets; ``elastic`` shares one block per layer sliced by kernel / width (Once-for-All)
  and is what trains in CPU minutes (see :mod:`hwnas.supernet`).
* greedy: m=10 paths sampled, k=5 kept, 1000 search-val images to score them, pool of 1000,
  eps 0 -> 0.8 linearly, alpha=0.08, 10K uniform warm-up iterations (GreedyNAS Sec. 5.1, 5.3.1).
  For small runs ``pool_size`` and ``warmup_steps`` default to values scaled to the run (see
  :meth:`TrainConfig.resolved_pool_size` and :meth:`TrainConfig.resolved_warmup_steps`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hwnas.errors import HwnasError

#: GreedyNAS Sec. 5.1: "decayed with cosine annealing strategy from initial value 0.12. The batch
#: size is 1024."
PAPER_LR = 0.12
PAPER_BATCH = 1024
#: GreedyNAS Sec. 5.3.1: warm-up "by uniform sampling for 10K iterations".
PAPER_WARMUP_STEPS = 10_000
#: For short runs the warm-up is capped at this fraction of all steps: the paper's 10K iterations
#: are ~8 of the ~60 ImageNet epochs its supernet trains (about 1/7 of the run).
WARMUP_FRACTION_CAP = 0.15
#: GreedyNAS Sec. 5.1: pool size 1000, "which approximates the amount of paths involved in one epoch".
PAPER_POOL_SIZE = 1000


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a supernet training run (stored in ``config.json`` and checkpoints).

    ``width`` / ``resolution`` of ``None`` keep the space's defaults; the number of classes comes
    from the dataset. ``steps_per_epoch`` caps the batches per epoch (smoke tests, quick runs).
    """

    space: str = "mbv2"
    width: float | None = None
    resolution: int | None = None
    data: str = "digits"
    data_root: str | None = None
    download: bool = False
    strategy: str = "uniform"
    sharing: str = "independent"  # SPOS / GreedyNAS candidate blocks; "elastic": OFA slicing
    epochs: int = 120  # SPOS Sec. 4
    batch_size: int = PAPER_BATCH  # per process; GreedyNAS Sec. 5.1
    lr: float | None = None  # None: PAPER_LR * global batch / 1024
    momentum: float = 0.9  # GreedyNAS Sec. 5.1
    nesterov: bool = True  # GreedyNAS Sec. 5.1
    weight_decay: float = 4e-5  # SPOS / ShuffleNetV2
    label_smoothing: float = 0.1  # SPOS reference code
    workers: int = 2
    amp: bool = False
    seed: int = 0
    split_seed: int = 0
    steps_per_epoch: int | None = None
    log_every: int = 20
    # constrained (SPOS uniform-constraint sampling)
    macs_range: tuple[float, float] | None = None
    # greedy (GreedyNAS Sec. 5.1)
    greedy_m: int = 10
    greedy_k: int = 5
    pool_size: int | None = None  # None: min(1000, paths trained per epoch)
    score_batch: int = 1000
    eps_max: float = 0.8
    warmup_steps: float | None = None  # None: min(10K, 15 % of steps); < 1: fraction of steps
    stop_alpha: float = 0.08
    early_stop: bool = True

    def __post_init__(self) -> None:
        from hwnas.supernet import SHARING
        from hwnas.train.samplers import sampler_names

        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr is None or self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (0.0 <= self.momentum < 1.0, f"--momentum must lie in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}"),
            (0.0 <= self.label_smoothing < 1.0,
             f"--label-smoothing must lie in [0, 1), got {self.label_smoothing}"),
            (self.workers >= 0, f"--workers must be >= 0, got {self.workers}"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1,
             f"--steps-per-epoch must be >= 1, got {self.steps_per_epoch}"),
            (self.log_every >= 1, f"log interval must be >= 1, got {self.log_every}"),
            (self.width is None or self.width > 0, f"--width must be > 0, got {self.width}"),
            (self.resolution is None or self.resolution >= 8,
             f"--resolution must be >= 8, got {self.resolution}"),
            (self.greedy_m >= 1, f"--greedy-m must be >= 1, got {self.greedy_m}"),
            (1 <= self.greedy_k <= self.greedy_m,
             f"--greedy-k must lie in 1..--greedy-m ({self.greedy_m}), got {self.greedy_k}"),
            (self.pool_size is None or self.pool_size >= 1, f"--pool-size must be >= 1, got {self.pool_size}"),
            (self.score_batch >= 1, f"--score-batch must be >= 1, got {self.score_batch}"),
            (0.0 <= self.eps_max <= 1.0, f"--eps-max must lie in [0, 1], got {self.eps_max}"),
            (self.warmup_steps is None or self.warmup_steps >= 0,
             f"--warmup-steps must be >= 0, got {self.warmup_steps}"),
            (0.0 <= self.stop_alpha <= 1.0, f"--stop-alpha must lie in [0, 1], got {self.stop_alpha}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise HwnasError(msg)
        if self.sharing not in SHARING:
            raise HwnasError(f"unknown --sharing {self.sharing!r}; allowed: {', '.join(SHARING)}")
        if self.strategy not in sampler_names():
            raise HwnasError(f"unknown strategy {self.strategy!r}; allowed: {', '.join(sampler_names())}")
        if self.macs_range is not None:
            lo, hi = self.macs_range
            if not 0 <= lo <= hi:
                raise HwnasError(f"--macs-range must be LO,HI with 0 <= LO <= HI, got {lo:g},{hi:g}")
        if self.strategy == "constrained" and self.macs_range is None:
            raise HwnasError("strategy 'constrained' needs --macs-range LO,HI (MACs, e.g. 2M,4M)")

    # ---- derived values --------------------------------------------------------------------------
    def base_lr(self, world_size: int = 1) -> float:
        """The peak learning rate: ``lr`` or the paper's 0.12 scaled to the global batch."""
        if self.lr is not None:
            return self.lr
        return PAPER_LR * self.batch_size * world_size / PAPER_BATCH

    def resolved_warmup_steps(self, total_steps: int) -> int:
        """Uniform warm-up steps of ``greedy``: the paper's 10K iterations, capped at 15 % of short
        runs; an explicit value < 1 is a fraction of all steps."""
        if self.warmup_steps is None:
            return int(min(PAPER_WARMUP_STEPS, round(WARMUP_FRACTION_CAP * total_steps)))
        if self.warmup_steps < 1:
            return int(round(self.warmup_steps * total_steps))
        return int(self.warmup_steps)

    def resolved_pool_size(self, steps_per_epoch: int) -> int:
        """Candidate pool size: the paper's 1000, or the paths trained in one epoch when fewer (the
        paper's own rationale: the pool "approximates the amount of paths involved in one epoch")."""
        if self.pool_size is not None:
            return self.pool_size
        return max(1, min(PAPER_POOL_SIZE, steps_per_epoch))

    def sampler_options(self, steps_per_epoch: int, total_steps: int) -> dict[str, Any]:
        """Keyword settings for :func:`hwnas.train.samplers.create_sampler` of ``strategy``."""
        if self.strategy == "constrained":
            return {"cost_range": self.macs_range}
        if self.strategy == "greedy":
            return {"m": self.greedy_m, "k": self.greedy_k,
                    "pool_size": self.resolved_pool_size(steps_per_epoch),
                    "eps_max": self.eps_max, "warmup_steps": self.resolved_warmup_steps(total_steps),
                    "alpha": self.stop_alpha, "early_stop": self.early_stop}
        return {}

    # ---- (de)serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["macs_range"] is not None:
            d["macs_range"] = list(d["macs_range"])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HwnasError(f"unknown training settings {', '.join(unknown)}")
        d = dict(data)
        d.setdefault("sharing", "independent")  # runs saved before weight sharing was a setting
        if d.get("macs_range") is not None:
            d["macs_range"] = tuple(float(v) for v in d["macs_range"])
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def parse_count(text: str) -> float:
    """``"2.5M"`` -> 2.5e6; accepts K / M / G suffixes (MACs ranges on the command line)."""
    t = text.strip().upper()
    mult = {"K": 1e3, "M": 1e6, "G": 1e9}.get(t[-1:], 1.0)
    if t[-1:] in "KMG":
        t = t[:-1]
    try:
        return float(t) * mult
    except ValueError:
        raise HwnasError(f"{text!r} is not a number (use e.g. 3000000, 3M or 0.3G)") from None


def parse_range(text: str) -> tuple[float, float]:
    """``"2M,4M"`` -> (2e6, 4e6)."""
    parts = [p for p in text.replace(":", ",").split(",") if p.strip()]
    if len(parts) != 2:
        raise HwnasError(f"--macs-range must be LO,HI (e.g. 2M,4M), got {text!r}")
    return parse_count(parts[0]), parse_count(parts[1])
