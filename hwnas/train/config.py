"""Supernet training configuration: one frozen dataclass for the loop; strategies own their options.

Defaults and where they come from:

* optimizer: SGD, momentum 0.9, Nesterov; cosine annealing, stepped every iteration (GreedyNAS
  Sec. 5.1). Batch size, peak learning rate and epochs come from the dataset's recipe
  (:mod:`hwnas.train.recipes`; the papers' batch 1024 / lr 0.12 / 120 epochs for ``imagefolder``);
  the recipe's rate scales linearly with the global batch (Goyal et al. 2017) when the batch
  differs. An explicit value always wins. ``lr_warmup_epochs`` adds a linear warm-up from 0.
* weight decay 4e-5 on convolution / linear weights only, not on BN parameters or biases
  (SPOS trains "with the same settings as ShuffleNetV2", which uses 4e-5).
* label smoothing 0.1 (the SPOS reference implementation's ``CrossEntropyLabelSmooth``).
* weight sharing ``independent``: one candidate block per choice, as SPOS and GreedyNAS train
  their supernets; ``elastic`` shares one block per layer sliced by kernel / width (Once-for-All).
* the strategy's own settings live in ``options`` and are parsed and validated by the strategy
  (:mod:`hwnas.train.strategies`); ``device`` / ``runtime`` name a latency table for strategies
  that constrain latency.

Configurations stored before strategies owned their options (flat ``greedy_m`` / ``macs_range`` /
... fields) still load: :meth:`TrainConfig.from_dict` moves those fields into ``options``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hwnas.errors import HwnasError
from hwnas.train.recipes import PAPER_BATCH, PAPER_LR, Recipe, recipe_for

#: flat fields of configurations stored before the strategy seam -> (strategy, option name)
LEGACY_OPTIONS = {
    "macs_range": ("constrained", "range"),
    "greedy_m": ("greedy", "m"), "greedy_k": ("greedy", "k"), "pool_size": ("greedy", "pool_size"),
    "score_batch": ("greedy", "score_batch"), "eps_max": ("greedy", "eps_max"),
    "warmup_steps": ("greedy", "warmup_steps"), "stop_alpha": ("greedy", "alpha"),
    "early_stop": ("greedy", "early_stop"),
}
#: what the pre-seam samplers did that the ported strategies make an option
LEGACY_BEHAVIOUR = {"constrained": {"bins": 1}, "greedy": {"eps_ramp": 1.0}}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a supernet training run (stored in ``config.json`` and checkpoints).

    ``width`` / ``resolution`` of ``None`` keep the space's defaults; the number of classes comes
    from the dataset. ``batch_size`` / ``lr`` / ``epochs`` of ``None`` come from the dataset's
    recipe (:meth:`resolve`). ``steps_per_epoch`` caps the batches per epoch (quick runs).
    ``options`` are the strategy's settings (``{"m": 10, "k": 5}`` for greedy), validated by it.
    """

    space: str = "mbv2"
    width: float | None = None
    resolution: int | None = None
    act: str | None = None  # the blocks' second activation (PGONAS Sec. 3.1); None: the space's
    data: str = "digits"
    data_root: str | None = None
    download: bool = False
    strategy: str = "uniform"
    options: dict[str, Any] = field(default_factory=dict)
    sharing: str = "independent"  # SPOS / GreedyNAS candidate blocks; "elastic": OFA slicing
    epochs: int | None = None
    batch_size: int | None = None  # per process
    lr: float | None = None
    lr_warmup_epochs: float = 0.0
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
    # the latency table of cost-constrained strategies (a device profile and a runtime)
    device: str | None = None
    runtime: str = "tflite"
    tables_dir: str | None = None

    def __post_init__(self) -> None:
        from hwnas.supernet import SHARING
        from hwnas.train.strategies import parse_strategy_options

        checks = [
            (self.epochs is None or self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size is None or self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr is None or self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (self.lr_warmup_epochs >= 0, f"--lr-warmup-epochs must be >= 0, got {self.lr_warmup_epochs}"),
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
        ]
        for ok, msg in checks:
            if not ok:
                raise HwnasError(msg)
        if self.sharing not in SHARING:
            raise HwnasError(f"unknown --sharing {self.sharing!r}; allowed: {', '.join(SHARING)}")
        # unknown strategy / option, bad value: one-line error; given options are kept typed
        parsed = parse_strategy_options(self.strategy, dict(self.options)).to_dict()
        object.__setattr__(self, "options", {k: parsed[k] for k in self.options})

    # ---- derived values --------------------------------------------------------------------------
    @property
    def recipe(self) -> Recipe:
        """The dataset's recipe (the papers' settings for ``imagefolder``)."""
        return recipe_for(self.data)

    def resolve(self) -> tuple[TrainConfig, dict[str, Any]]:
        """This configuration with unset ``batch_size`` / ``epochs`` taken from the dataset's recipe
        (an unset ``lr`` stays unset: :meth:`base_lr` scales the recipe's rate to the global batch),
        and a record of the recipe and the settings taken from it (logged, stored in ``config.json``)."""
        r = self.recipe
        filled = {k: getattr(r, k) for k in ("batch_size", "epochs") if getattr(self, k) is None}
        taken = sorted([*filled, *(["lr"] if self.lr is None else [])])
        return dataclasses.replace(self, **filled), {"recipe": r.to_dict(), "from_recipe": taken}

    def base_lr(self, world_size: int = 1) -> float:
        """The peak learning rate: ``lr``, else the recipe's rate scaled to the global batch."""
        if self.lr is not None:
            return self.lr
        r = self.recipe
        batch = self.batch_size if self.batch_size is not None else r.batch_size
        return r.lr * batch * world_size / r.batch_size

    # ---- (de)serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["options"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.options.items()}
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict`; configurations stored before the strategy seam load too
        (their flat strategy fields become ``options``, with the behaviour those runs had)."""
        d = dict(data)
        legacy = {k: d.pop(k) for k in list(d) if k in LEGACY_OPTIONS}
        if legacy:
            strategy = d.get("strategy", "uniform")
            opts = dict(LEGACY_BEHAVIOUR.get(strategy, {}))
            for key, value in legacy.items():
                owner, name = LEGACY_OPTIONS[key]
                if owner == strategy and value is not None:
                    opts[name] = value
            d["options"] = {**opts, **d.get("options", {})}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise HwnasError(f"unknown training settings {', '.join(unknown)}")
        d.setdefault("sharing", "independent")  # runs saved before weight sharing was a setting
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def parse_range(text: str, what: str = "range") -> tuple[float, float]:
    """``"2M,4M"`` -> (2e6, 4e6) (amounts as :func:`hwnas.units.parse_amount` reads them)."""
    from hwnas.units import parse_amount

    parts = [p for p in text.replace(":", ",").split(",") if p.strip()]
    if len(parts) != 2:
        raise HwnasError(f"{what} must be LO,HI (e.g. 2M,4M), got {text!r}")
    lo, hi = (parse_amount(p.strip(), what, allow_zero=True) for p in parts)
    return lo, hi


__all__ = ["PAPER_BATCH", "PAPER_LR", "TrainConfig", "parse_range"]
