"""The training-strategy seam: what a strategy decides and what the loop keeps.

Per step the loop asks the strategy for the paths to run (:meth:`Strategy.paths`), runs them in
ONE forward call of the (possibly DistributedDataParallel-wrapped) :class:`TrainModel`
(:meth:`Strategy.forward`), asks for the loss (:meth:`Strategy.loss`: cross-entropy, distillation
from another path's output, regularisers; the losses of several paths summed into one tensor) and
does ONE backward. Because every path of a step is inside one forward and one backward, DDP
accepts multi-path steps. The strategy also owns

* extra trainable modules (:meth:`Strategy.modules`, e.g. K-shot NAS's simplex-net), trained by
  its own optimisers and schedules (:meth:`Strategy.optimizers`); they live in the
  :class:`TrainModel` next to the supernet, so DDP all-reduces their gradients too;
* its state for exact resume (:meth:`Strategy.state_dict`: plain lists / dicts / numbers, loadable
  with ``torch.load(weights_only=True)``), its own seeded numpy RNG (every DDP rank built with the
  same seed draws the same paths), per-epoch statistics and a stopping decision.

The loop keeps setup, data, the supernet's optimizer and schedule, checkpoints and logging.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.errors import HwnasError
from hwnas.train.strategies.options import StrategyOptions

if TYPE_CHECKING:
    from hwnas.data import DataSplits
    from hwnas.spaces.base import SearchSpace
    from hwnas.supernet import Supernet
    from hwnas.train.distributed import DistInfo

Genes = tuple[int, ...]
#: ``cost_fn(genes_matrix) -> costs``: one cost per row of an ``(n, num_genes)`` int array.
CostFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PathRun:
    """One path of a step. ``grad=False`` runs it without gradients (e.g. a distillation teacher);
    ``mix`` goes to the weight-sharing provider (per-path weight combination); ``role`` is a free
    label the strategy's loss can use ("teacher", "student", ...)."""

    genes: Genes
    grad: bool = True
    mix: Any = None
    role: str = "train"


@dataclass
class StepBatch:
    """What :meth:`Strategy.loss` sees: the batch, the paths and their outputs (logits)."""

    step: int
    x: torch.Tensor
    y: torch.Tensor
    runs: list[PathRun]
    outputs: list[torch.Tensor]
    criterion: nn.Module


@dataclass
class StepLoss:
    """The one loss to back-propagate and named float terms for the metrics log."""

    total: torch.Tensor
    terms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CostFns:
    """Architecture costs a strategy may constrain: ``get("macs")``, ``get("latency")`` (ms from the
    latency table of the run's ``device`` / ``runtime``); each ``(n, genes) -> (n,)``."""

    space: Any
    device: str | None = None
    runtime: str = "tflite"
    tables_dir: str | None = None
    extra: Mapping[str, CostFn] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted({"macs", "latency", *self.extra})

    def get(self, name: str) -> CostFn:
        if name in self.extra:
            return self.extra[name]
        if name == "macs":
            from hwnas.cost import CostModel

            model = CostModel(self.space)
            return lambda m: model(m)["macs"]
        if name == "latency":
            if self.device is None:
                raise HwnasError("a latency range needs --device (and --runtime): the latency table "
                                 "of which device?")
            from hwnas.latency.predict import LatencyPredictor
            from hwnas.latency.table import load_table

            return LatencyPredictor(load_table(self.device, self.space, self.runtime, self.tables_dir), self.space)
        raise HwnasError(f"unknown cost {name!r}; allowed: {', '.join(self.names())}")


@dataclass(frozen=True)
class RunContext:
    """What the loop hands a strategy when it is built."""

    space: SearchSpace
    supernet: Supernet
    data: DataSplits
    info: DistInfo
    seed: int
    epochs: int
    steps_per_epoch: int
    batch_size: int
    use_amp: bool = False
    costs: CostFns | None = None
    #: the dataset recipe's GreedyNAS pool size (None: the paper's proportion of the steps per epoch)
    recipe_pool_size: int | None = None

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @classmethod
    def for_sampling(cls, space: SearchSpace, *, seed: int = 0, epochs: int = 1, steps_per_epoch: int = 1,
                     costs: Mapping[str, CostFn] | None = None, **kw: Any) -> RunContext:
        """A context without supernet or data: enough for strategies that only sample paths (replay
        the paths a run trained, test a sampler)."""
        return cls(space=space, supernet=None, data=None, info=None, seed=seed, epochs=epochs,  # type: ignore[arg-type]
                   steps_per_epoch=steps_per_epoch, batch_size=1,
                   costs=CostFns(space, extra=dict(costs or {})), **kw)


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


def rng_from_state(state: dict[str, Any]) -> np.random.Generator:
    bit_gen = getattr(np.random, state["bit_generator"])()
    bit_gen.state = state
    return np.random.Generator(bit_gen)


class Strategy(ABC):
    """Base class of training strategies (register with :func:`register_strategy`)."""

    name: ClassVar[str] = "strategy"
    #: one line for ``--help`` and docs: what it does, after which paper
    summary: ClassVar[str] = ""
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions

    def __init__(self, options: StrategyOptions, run: RunContext) -> None:
        self.options = options
        self.space = run.space
        self.rng = np.random.default_rng(run.seed)
        self.should_stop = False
        self.stop_reason = ""

    @classmethod
    def weight_sharing(cls, options: StrategyOptions, sharing: str) -> Any:
        """The weight provider of the run's supernet given ``--sharing`` (a name, a provider config
        or a :class:`~hwnas.nn.sharing.WeightSharing`); by default that provider itself. K-shot NAS
        returns K weight copies on top of it."""
        return sharing

    # ---- per step ------------------------------------------------------------------------------
    @abstractmethod
    def paths(self, step: int) -> list[PathRun]:
        """The paths to run on the batch of global step ``step``."""

    def forward(self, model: TrainModel, x: torch.Tensor, runs: Sequence[PathRun]) -> list[torch.Tensor]:
        """Run every path of the step (inside the one forward call of ``model``)."""
        outs = []
        for r in runs:
            if r.grad:
                outs.append(model.supernet(x, r.genes, r.mix))
            else:
                with torch.no_grad():
                    outs.append(model.supernet(x, r.genes, r.mix))
        return outs

    def loss(self, batch: StepBatch) -> StepLoss:
        """Default: the mean cross-entropy (``batch.criterion``) of the paths run with gradients."""
        terms = [batch.criterion(o, batch.y) for o, r in zip(batch.outputs, batch.runs) if r.grad]
        if not terms:
            raise HwnasError(f"strategy {self.name!r} ran no path with gradients at step {batch.step}")
        return StepLoss(sum(terms) / len(terms))

    # ---- extra trainable modules ---------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        """Trainable modules the strategy owns (built once; checkpointed with the run)."""
        return {}

    def optimizers(self, modules: nn.ModuleDict, total_steps: int
                   ) -> list[tuple[torch.optim.Optimizer, Any]]:
        """``(optimizer, scheduler or None)`` pairs for :meth:`modules`, stepped after the backward."""
        return []

    # ---- epochs, logging, state ----------------------------------------------------------------
    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """Called after each epoch; returns statistics to log and may set ``should_stop``."""
        return {}

    def stats(self) -> dict[str, Any]:
        """Small dict of running statistics for the metrics log."""
        return {}

    def describe(self) -> dict[str, Any]:
        """The strategy's resolved settings (``config.json``)."""
        return self.options.to_dict()

    def notes(self) -> list[str]:
        """Messages the run prints at its start (e.g. a budget too small for a stopping rule)."""
        return []

    def artifacts(self) -> dict[str, dict[str, Any]]:
        """Files written next to the checkpoint: ``{"pool.json": {...}}``."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rng": rng_state(self.rng), "should_stop": self.should_stop,
                "stop_reason": self.stop_reason, **self._extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise HwnasError(f"strategy state is for {state.get('name')!r}, not {self.name!r}")
        self.rng = rng_from_state(state["rng"])
        self.should_stop = bool(state.get("should_stop", False))
        self.stop_reason = str(state.get("stop_reason", ""))
        self._load_extra_state(state)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass


class TrainModel(nn.Module):
    """The module the loop trains (and DDP wraps): the supernet plus the strategy's modules.

    ``forward(x, runs)`` delegates to :meth:`Strategy.forward`, so all paths of a step run in one
    call. The strategy is held outside the module tree (it is not an ``nn.Module``).
    """

    def __init__(self, supernet: Supernet, strategy: Strategy) -> None:
        super().__init__()
        self.supernet = supernet
        self.extra = nn.ModuleDict(strategy.modules())
        self._strategy = (strategy,)

    def forward(self, x: torch.Tensor, runs: Sequence[PathRun]) -> list[torch.Tensor]:  # type: ignore[override]
        return self._strategy[0].forward(self, x, runs)


def soft_target_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """In-place distillation (Once-for-All Sec. 3.2, PGONAS Sec. 3): KL divergence from the
    teacher path's softened output (detached) to the student's, scaled by ``temperature**2``."""
    t = temperature
    target = F.softmax(teacher.detach().float() / t, dim=1)
    return F.kl_div(F.log_softmax(student.float() / t, dim=1), target, reduction="batchmean") * t * t
