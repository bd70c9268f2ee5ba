"""Stand-alone training of one subnet from scratch: the ground truth a supernet's ranking is scored against.

The recipe is a frozen :class:`StandaloneRecipe`: SGD with Nesterov momentum and a cosine schedule
stepped per iteration after a short linear warm-up, weight decay on conv / linear weights only,
label smoothing (the SPOS / GreedyNAS recipe family, scaled to a CPU budget). The only randomness
of a training is its ``seed``: initial weights and the data order (or only the weights, with the
recipe's ``data_seed`` fixing the order) (``hwnas.data.train_loader``
derives both the shuffling and any per-sample augmentation from it).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hwnas.data import DataSplits, train_loader
from hwnas.data.loaders import steps_per_epoch as count_steps
from hwnas.errors import HwnasError
from hwnas.spaces.base import SearchSpace
from hwnas.supernet import Subnet


@dataclass(frozen=True)
class StandaloneRecipe:
    """How every subnet of a ground truth is trained (stored in the ground-truth file)."""

    epochs: int = 2
    batch_size: int = 128
    lr: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5  # SPOS / ShuffleNetV2
    label_smoothing: float = 0.1  # SPOS reference code
    warmup_steps: int = 20
    #: cap on batches per epoch (None: the whole training split)
    steps_per_epoch: int | None = None
    #: zero the last BN scale of every residual branch, so each block starts as the identity
    #: ("zero gamma", Goyal et al. 2017, Sec. 5.1): deep, narrow subnets then train as steadily
    #: as shallow ones in a short budget
    zero_init_residual: bool = True
    #: the data order's seed: None draws it from each training's seed (weights and order vary
    #: together); an int gives every training the same order, so two seeds of a subnet differ
    #: only in their initial weights, and the order's effect is common to all subnets
    data_seed: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"recipe epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"recipe batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"recipe lr must be > 0, got {self.lr}"),
            (0.0 <= self.momentum < 1.0, f"recipe momentum must lie in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"recipe weight_decay must be >= 0, got {self.weight_decay}"),
            (0.0 <= self.label_smoothing < 1.0,
             f"recipe label_smoothing must lie in [0, 1), got {self.label_smoothing}"),
            (self.warmup_steps >= 0, f"recipe warmup_steps must be >= 0, got {self.warmup_steps}"),
            (self.data_seed is None or self.data_seed >= 0,
             f"recipe data_seed must be >= 0 or None, got {self.data_seed}"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1,
             f"recipe steps_per_epoch must be >= 1, got {self.steps_per_epoch}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise HwnasError(msg)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["data_seed"] is None:  # the default leaves files (and resume keys) as before it existed
            del d["data_seed"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StandaloneRecipe:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise HwnasError(f"unknown stand-alone recipe settings {', '.join(unknown)}; "
                             f"allowed: {', '.join(sorted(known))}")
        return cls(**d)

    def steps(self, n_train: int) -> int:
        """Batches per epoch for a training split of ``n_train`` images."""
        per_epoch = count_steps(n_train, self.batch_size)
        if self.steps_per_epoch is not None:
            per_epoch = min(per_epoch, self.steps_per_epoch)
        if per_epoch < 1:
            raise HwnasError(f"recipe batch_size {self.batch_size} exceeds the {n_train} training images")
        return per_epoch


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine annealing to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, span) / span))


def _optimizer(model: nn.Module, recipe: StandaloneRecipe) -> torch.optim.SGD:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum,
                           nesterov=recipe.nesterov and recipe.momentum > 0)


def zero_init_residual(model: nn.Module) -> int:
    """Zero the scale of the last BN of every residual MBConv branch; returns how many."""
    from hwnas.nn.blocks import MBConv

    n = 0
    for m in model.modules():
        if isinstance(m, MBConv) and m.residual:
            nn.init.zeros_(m.project_bn.weight)
            n += 1
    return n


def train_subnet(space: SearchSpace, genes: tuple[int, ...], data: DataSplits, recipe: StandaloneRecipe,
                 *, seed: int, device: torch.device | str = "cpu") -> Subnet:
    """Train the static subnet ``genes`` from scratch; returns it in eval mode."""
    torch.manual_seed(seed)
    model = Subnet(space, genes)
    if recipe.zero_init_residual:
        zero_init_residual(model)
    model = model.to(device).train()
    per_epoch = recipe.steps(len(data.train))
    total = recipe.epochs * per_epoch
    opt = _optimizer(model, recipe)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, recipe.warmup_steps, total))
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    for epoch in range(recipe.epochs):
        order = seed if recipe.data_seed is None else recipe.data_seed
        loader = train_loader(data.train, batch_size=recipe.batch_size, seed=order, epoch=epoch)
        for b, (x, y) in enumerate(loader):
            if b >= per_epoch:
                break
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            criterion(model(x), y).backward()
            opt.step()
            sched.step()
    return model.eval()
