"""``pgonas``: Prior-Guided One-shot NAS (Dong et al., CVPR 2022 NAS challenge, PGONAS Alg. 1).

Every step (PGONAS Sec. 3.1, Fig. 3, Alg. 1):

* the sandwich rule with the balanced sampler: the largest path (most MACs), the smallest path and
  ``random_paths`` paths, each picked from ``candidates`` uniform draws with probability
  ``p_i = FLOPs_i / sum_j FLOPs_j`` (Sec. 3.1, after BNAO);
* in-place distillation: the largest path learns from the labels, the others from its detached
  soft output (Alg. 1 lines 5-17);
* the pairwise rank loss guided by a prior (Sec. 3.2, Eq. 2, Alg. 1 lines 19-26): for ``pairs``
  pairs of random paths (a, b), with a the one the prior ranks higher,
  ``R = max(0, L(a) - L(b))`` on the labels, weighted by ``lambda`` whose schedule is one of
  PGONAS Table 3: ``constant``, ``warmup`` (0 -> ``lam_max`` = 2 linearly over the first 20 epochs,
  the paper's best and the default), ``cosine`` (rises and falls back), ``multistage`` (zero,
  warm-up, constant and decreasing stages). Priors (Table 4): ``flops`` (the default, the best
  guided result), ``params`` and ``zen`` (Zen-score, Zen-NAS, :mod:`hwnas.train.strategies.zen`).

All terms are summed into the step's one loss, as Alg. 1 accumulates their gradients before one
optimizer step. The paper trains 70 epochs with the sandwich rule; a run shorter than that keeps
the warm-up at the same share of the run (20 / 70) unless ``rank_warmup_epochs`` is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from hwnas.errors import HwnasError
from hwnas.train.strategies.base import (CostFns, Genes, PathRun, RunContext, StepBatch, StepLoss, Strategy,
                                         soft_target_loss)
from hwnas.train.strategies.options import StrategyOptions
from hwnas.train.strategies.registry import register_strategy

PRIORS = ("flops", "params", "zen")
SCHEDULES = ("constant", "warmup", "cosine", "multistage")
#: PGONAS Sec. 4.1: lambda rises 0 -> 2 over the first 20 of the 70 sandwich-rule epochs (Sec. 4).
PAPER_LAM_MAX = 2.0
PAPER_RANK_WARMUP_EPOCHS = 20.0
PAPER_EPOCHS = 70.0
#: PGONAS Sec. 4.1, Table 2: "the number of random sampled subnets as 2 and ... two pairs for rank loss".
PAPER_RANDOM_PATHS = 2
PAPER_PAIRS = 2
#: multistage schedule: ends of the zero, warm-up and constant stages as fractions of the run (the
#: paper shows the shape in Fig. 4 without numbers).
MULTISTAGE = (0.1, 0.3, 0.7)


@dataclass(frozen=True)
class PgonasOptions(StrategyOptions):
    """PGONAS defaults: 2 balanced random paths per step from ``candidates`` draws (the paper gives no
    number), 2 rank pairs, prior ``flops``, schedule ``warmup`` with ``lam_max`` = 2 over
    ``rank_warmup_epochs`` (default: 20, or 20/70 of a shorter run), distillation ``temperature`` 1,
    Zen-score batch ``zen_batch`` = 16."""

    random_paths: int = PAPER_RANDOM_PATHS
    candidates: int = 10
    pairs: int = PAPER_PAIRS
    prior: str = "flops"
    schedule: str = "warmup"
    lam_max: float = PAPER_LAM_MAX
    rank_warmup_epochs: float | None = None
    temperature: float = 1.0
    zen_batch: int = 16

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.random_paths >= 0, f"random_paths must be >= 0, got {self.random_paths}"),
            (self.candidates >= 1, f"candidates must be >= 1, got {self.candidates}"),
            (self.pairs >= 0, f"pairs must be >= 0, got {self.pairs}"),
            (self.prior in PRIORS, f"prior must be one of {', '.join(PRIORS)}, got {self.prior!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (self.lam_max >= 0, f"lam_max must be >= 0, got {self.lam_max}"),
            (self.rank_warmup_epochs is None or self.rank_warmup_epochs > 0,
             f"rank_warmup_epochs must be > 0, got {self.rank_warmup_epochs}"),
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature}"),
            (self.zen_batch >= 2, f"zen_batch must be >= 2 (BatchNorm statistics), got {self.zen_batch}"),
        ]


def lam_schedule(kind: str, epoch: float, epochs: float, lam_max: float, warmup_epochs: float) -> float:
    """The rank-loss weight at (fractional) ``epoch`` of ``epochs`` (PGONAS Table 3, Fig. 4)."""
    t = min(max(epoch / max(epochs, 1e-9), 0.0), 1.0)
    if kind == "constant":
        return lam_max
    if kind == "warmup":
        return lam_max * min(1.0, epoch / warmup_epochs)
    if kind == "cosine":
        return lam_max * 0.5 * (1.0 - math.cos(2.0 * math.pi * t))
    if kind == "multistage":
        zero, up, const = MULTISTAGE
        if t < zero:
            return 0.0
        if t < up:
            return lam_max * (t - zero) / (up - zero)
        if t < const:
            return lam_max
        return lam_max * (1.0 - t) / (1.0 - const)
    raise HwnasError(f"unknown rank-loss schedule {kind!r}; allowed: {', '.join(SCHEDULES)}")


def balanced_pick(rng: np.random.Generator, flops: np.ndarray) -> int:
    """Index drawn with probability ``FLOPs_i / sum_j FLOPs_j`` (PGONAS Sec. 3.1 balanced sampler);
    uniform when every candidate has zero FLOPs."""
    flops = np.asarray(flops, dtype=np.float64)
    total = flops.sum()
    return int(rng.choice(len(flops), p=flops / total if total > 0 else None))


def pairwise_rank_loss(loss_a: torch.Tensor, loss_b: torch.Tensor, prior_a: float, prior_b: float) -> torch.Tensor:
    """PGONAS Eq. 2: the path the prior ranks higher should have the lower loss,
    ``max(0, L(better) - L(worse))``; zero when the prior ties."""
    if prior_a == prior_b:
        return torch.zeros((), device=loss_a.device)
    better, worse = (loss_a, loss_b) if prior_a > prior_b else (loss_b, loss_a)
    return torch.relu(better - worse)


def prior_function(name: str, space: Any, *, zen_batch: int = 16, seed: int = 0) -> Callable[[Genes], float]:
    """``prior(genes) -> float`` (higher: expected better). A prior the space cannot compute is an
    :class:`HwnasError` naming the space and what the prior needs."""
    if name in ("flops", "params"):
        from hwnas.cost import CostModel

        try:
            model = CostModel(space)
            probe = model(np.asarray([space.largest()]))[("macs" if name == "flops" else "params")]
        except (HwnasError, KeyError, ValueError) as exc:
            raise HwnasError(f"prior {name!r} cannot be computed on space {space.name!r}: {exc}") from None
        if not float(probe[0]) > 0:
            raise HwnasError(f"prior {name!r} is 0 on space {space.name!r}: it cannot rank its paths")
        key = "macs" if name == "flops" else "params"  # FLOPs = 2 x MACs: the same ranking
        return lambda g: float(model(np.asarray([g]))[key][0])
    if name == "zen":
        if not any(op.op == "gap" for op in space.layers(space.smallest_valid())):
            raise HwnasError(f"prior 'zen' needs the pre-GAP feature map (Zen-NAS); space {space.name!r} "
                             f"has no global average pooling")
        dtypes = {op.dtype for op in space.fixed_ops()} | {op.dtype for o in space.block_options() for op in o.ops}
        bits = sorted(dtypes - {"fp32"})
        if bits:
            raise HwnasError(f"prior 'zen' needs a full-precision network (Zen-NAS Sec. 4: the response of a "
                             f"piecewise-linear network to a small perturbation); space {space.name!r} "
                             f"quantizes its blocks ({', '.join(bits)}); use prior=flops or prior=params")
        return ZenPrior(space, zen_batch, seed)
    raise HwnasError(f"unknown prior {name!r}; allowed: {', '.join(PRIORS)}")


class ZenPrior:
    """Zen-score of a path's stand-alone network up to its GAP, cached per path."""

    def __init__(self, space: Any, batch: int, seed: int, cache_size: int = 4096) -> None:
        self.space, self.batch, self.seed, self.cache_size = space, batch, seed, cache_size
        self.cache: dict[Genes, float] = {}

    def features(self, genes: Genes) -> torch.nn.Module:
        from hwnas.supernet import Subnet

        sub = Subnet(self.space, genes)
        cut = next(i for i, s in enumerate(sub.specs) if s.op == "gap")
        return torch.nn.Sequential(*list(sub.ops)[:cut])

    def __call__(self, genes: Genes) -> float:
        from hwnas.train.strategies.zen import zen_score

        genes = tuple(int(v) for v in genes)
        if genes not in self.cache:
            with torch.random.fork_rng(devices=[]):  # building the network draws from the global RNG
                feats = self.features(genes)
            shape = (self.space.in_channels, self.space.resolution, self.space.resolution)
            if len(self.cache) >= self.cache_size:
                self.cache.clear()
            self.cache[genes] = zen_score(feats, shape, batch=self.batch, seed=self.seed)
        return self.cache[genes]


@register_strategy
class PgonasStrategy(Strategy):
    """PGONAS: balanced sandwich rule, in-place distillation, prior-guided pairwise rank loss."""

    name: ClassVar[str] = "pgonas"
    summary: ClassVar[str] = ("largest + smallest + FLOPs-balanced random paths with in-place distillation "
                              "and a prior-guided pairwise rank loss (PGONAS Alg. 1)")
    Options: ClassVar[type[StrategyOptions]] = PgonasOptions

    def __init__(self, options: PgonasOptions, run: RunContext) -> None:
        super().__init__(options, run)
        o = options
        self.o = o
        self.prior = prior_function(o.prior, self.space, zen_batch=o.zen_batch, seed=run.seed)
        self.macs = (run.costs or CostFns(self.space)).get("macs")
        self.largest, self.smallest = self.space.largest(), self.space.smallest()
        self.steps_per_epoch, self.epochs = run.steps_per_epoch, run.epochs
        self.warmup_epochs = (o.rank_warmup_epochs if o.rank_warmup_epochs is not None
                              else min(PAPER_RANK_WARMUP_EPOCHS, PAPER_RANK_WARMUP_EPOCHS / PAPER_EPOCHS * run.epochs))
        self._priors: list[tuple[float, float]] = []
        self._lam = 0.0
        self.last_rank = 0.0

    def lam(self, step: int) -> float:
        return lam_schedule(self.o.schedule, step / max(1, self.steps_per_epoch), self.epochs,
                            self.o.lam_max, self.warmup_epochs)

    def balanced(self) -> Genes:
        """One of ``candidates`` uniform paths, drawn with probability FLOPs_i / sum_j FLOPs_j."""
        cands = self.space.sample_many(self.rng, self.o.candidates)
        return tuple(int(v) for v in cands[balanced_pick(self.rng, self.macs(cands))])

    def paths(self, step: int) -> list[PathRun]:
        runs = [PathRun(self.largest, role="teacher"), PathRun(self.smallest, role="student")]
        runs += [PathRun(self.balanced(), role="student") for _ in range(self.o.random_paths)]
        self._lam = self.lam(step)
        self._priors = []
        if self._lam > 0:
            for _ in range(self.o.pairs):
                a, b = self.space.sample(self.rng), self.space.sample(self.rng)
                self._priors.append((self.prior(a), self.prior(b)))
                runs += [PathRun(a, role="rank"), PathRun(b, role="rank")]
        return runs

    def loss(self, batch: StepBatch) -> StepLoss:
        out, runs, y, crit = batch.outputs, batch.runs, batch.y, batch.criterion
        teacher = out[0]
        ce = crit(teacher, y)
        kd = sum((soft_target_loss(o, teacher, self.o.temperature)
                  for o, r in zip(out[1:], runs[1:]) if r.role == "student"), torch.zeros((), device=y.device))
        ranked = [o for o, r in zip(out, runs) if r.role == "rank"]
        rank = torch.zeros((), device=y.device)
        for (ka, kb), ya, yb in zip(self._priors, ranked[0::2], ranked[1::2]):
            rank = rank + pairwise_rank_loss(crit(ya, y), crit(yb, y), ka, kb)
        self.last_rank = float(rank.detach())
        total = ce + kd + self._lam * rank
        return StepLoss(total, {"teacher_loss": float(ce.detach()), "distill_loss": float(kd.detach()),
                                "rank_loss": self.last_rank, "rank_lambda": round(self._lam, 6)})

    def stats(self) -> dict[str, Any]:
        return {"rank_lambda": round(self._lam, 4), "rank_loss": round(self.last_rank, 4)}

    def describe(self) -> dict[str, Any]:
        return {**self.options.to_dict(), "rank_warmup_epochs": self.warmup_epochs,
                "largest": list(self.largest), "smallest": list(self.smallest)}
