"""A multi-path plug-in strategy defined outside the package, for the seam's tests (single process
and DDP): each step runs the largest path (cross-entropy) and a uniformly drawn student path
distilled from the largest's output (in-place distillation, as the sandwich rule of PGONAS Sec. 3
does), through a learnable temperature module trained by the strategy's own optimizer."""

from dataclasses import dataclass

import torch
from torch import nn

from hwnas.train.strategies import (PathRun, StepLoss, Strategy, StrategyOptions, register_strategy,
                                    soft_target_loss)


class Temperature(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.raw = nn.Parameter(torch.zeros(()))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / (nn.functional.softplus(self.raw) + 0.5)


@dataclass(frozen=True)
class DistillOptions(StrategyOptions):
    students: int = 1
    kd_weight: float = 1.0

    def checks(self):
        return [(self.students >= 1, f"students must be >= 1, got {self.students}")]


@register_strategy
class DistillStrategy(Strategy):
    name = "test-distill"
    summary = "largest path + distilled students (test plug-in)"
    Options = DistillOptions

    def paths(self, step):
        return [PathRun(self.space.largest(), role="teacher")] + [
            PathRun(self.space.sample(self.rng), role="student") for _ in range(self.options.students)]

    def modules(self):
        return {"temperature": Temperature()}

    def optimizers(self, modules, total_steps):
        opt = torch.optim.SGD(modules.parameters(), lr=0.5)
        return [(opt, torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5))]

    def forward(self, model, x, runs):
        outs = super().forward(model, x, runs)
        temp = model.extra["temperature"]
        return [o if r.role == "teacher" else temp(o) for o, r in zip(outs, runs)]

    def loss(self, batch):
        teacher = batch.outputs[0]
        ce = batch.criterion(teacher, batch.y)
        kd = sum(soft_target_loss(o, teacher) for o in batch.outputs[1:]) / (len(batch.outputs) - 1)
        return StepLoss(ce + self.options.kd_weight * kd, {"ce": float(ce.detach()), "kd": float(kd.detach())})
