"""``sparse``: SparseNAS supernet training on a sparse space (SparseNAS Sec. 4, Algorithm 1).

The supernet trains only the members of a sparse-space file (``--sparse-space FILE``, written by
``hwnas sparse space``: the architectures an early accuracy predictor rates best per MACs bucket).
Every step draws ``n_sub`` distinct members uniformly (SparseNAS Sec. 5.5: ``n_sub = 3``; 2 is the
faster SparseNAS-dagger setting) and averages their losses into one backward (Eq. (2)).

With ``teacher`` (a subnet checkpoint: SparseNAS Sec. 5.5 and Once-for-All train "the biggest
sub-network" alone first), each step adds knowledge distillation (Hinton et al. 2015): the loss of
every path is ``CE + kd_ratio * KL(teacher || path)`` on the teacher's soft outputs, the teacher
running frozen, in eval mode, outside the trained model. ``init_from_teacher`` (default on, as
SparseNAS Sec. 5.13 finds initialising from the teacher far better than from the proxy supernet)
copies the teacher's weights into the supernet's modules of its path (the prefix / centre slices
of elastic weights) before the first step. ``resolutions`` (e.g. ``12,16,20``) resizes each step's
batch, for the teacher too, to one of them drawn at random (Once-for-All elastic resolution,
:mod:`.resolution`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.spaces.sparse_set import load_sparse_set
from hwnas.train.strategies.base import PathRun, RunContext, StepBatch, StepLoss, Strategy, soft_target_loss
from hwnas.train.strategies.options import StrategyOptions
from hwnas.train.strategies.registry import register_strategy
from hwnas.train.strategies.resolution import StepResolution, resolution_check

#: SparseNAS Sec. 5.5: "allowing us to speed up the training using a smaller n_sub = 3"
PAPER_N_SUB = 3


@dataclass(frozen=True)
class SparseOptions(StrategyOptions):
    """``space_file``: the sparse-space file (``--sparse-space``); ``n_sub``: members per step
    (SparseNAS: 3, or 2); ``teacher``: a subnet checkpoint to distil from; ``kd_ratio``: weight of
    the distillation term; ``init_from_teacher``: start the supernet from the teacher's weights;
    ``resolutions``: input resolutions drawn per step (Once-for-All; empty: the space's only)."""

    space_file: str = ""
    n_sub: int = PAPER_N_SUB
    teacher: str | None = None
    kd_ratio: float = 1.0
    init_from_teacher: bool = True
    resolutions: str = ""

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (bool(self.space_file), "space_file is required: pass --sparse-space FILE (written by "
                                    "`hwnas sparse space`)"),
            *([_unreadable(self.space_file)] if self.space_file else []),
            (self.n_sub >= 1, f"n_sub must be >= 1, got {self.n_sub}"),
            (self.kd_ratio >= 0, f"kd_ratio must be >= 0, got {self.kd_ratio:g}"),
            resolution_check(self.resolutions),
        ]


def _unreadable(path: str) -> tuple[bool, str]:
    """(ok, why): the sparse-space file can be read (missing, a folder, not UTF-8 JSON...), checked
    with the options, before the data is loaded."""
    from hwnas.errors import HwnasError
    from hwnas.io import read_json

    try:
        read_json(path, "sparse-space file")
    except HwnasError as exc:
        return False, str(exc)
    return True, ""


@register_strategy
class SparseStrategy(Strategy):
    """SparseNAS Algorithm 1: ``n_sub`` members of the sparse space per step, optional distillation."""

    name: ClassVar[str] = "sparse"
    summary: ClassVar[str] = ("n_sub members of a sparse space (--sparse-space FILE) per step, optional "
                              "distillation from a teacher subnet (SparseNAS Sec. 4)")
    Options: ClassVar[type[StrategyOptions]] = SparseOptions

    def __init__(self, options: SparseOptions, run: RunContext) -> None:
        super().__init__(options, run)
        path = Path(options.space_file)
        self.sparse = load_sparse_set(path, run.space, what="the run's space")
        self.members = self.sparse.genes
        self.file_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        self.counts = np.zeros(len(self.members), dtype=np.int64)
        self.teacher: nn.Module | None = None
        self.teacher_genes: tuple[int, ...] | None = None
        self.resolution = StepResolution(options.resolutions)
        if options.teacher:
            self.teacher, self.teacher_genes = _load_teacher(options.teacher, run.space)
            if options.init_from_teacher and run.supernet is not None:
                init_from_subnet(run.supernet, self.teacher)
            if run.supernet is not None:
                self.teacher.to(next(run.supernet.parameters()).device)

    def paths(self, step: int) -> list[PathRun]:
        n = min(self.options.n_sub, len(self.members))
        picks = self.rng.choice(len(self.members), size=n, replace=False)
        self.counts[picks] += 1
        runs = [PathRun(tuple(int(v) for v in self.members[i])) for i in picks]
        self.resolution.draw(self.rng)
        if self.teacher is not None:
            runs.append(PathRun(self.teacher_genes, grad=False, role="teacher"))
        return runs

    def forward(self, model: nn.Module, x: torch.Tensor, runs: Sequence[PathRun]) -> list[torch.Tensor]:
        outs = []
        x = self.resolution(x)
        for r in runs:
            if r.role == "teacher":
                with torch.no_grad():
                    outs.append(self.teacher(x))  # type: ignore[misc]
            else:
                outs.append(model.supernet(x, r.genes, r.mix))
        return outs

    def loss(self, batch: StepBatch) -> StepLoss:
        teacher = next((o for o, r in zip(batch.outputs, batch.runs) if r.role == "teacher"), None)
        students = [o for o, r in zip(batch.outputs, batch.runs) if r.grad]
        ce = sum(batch.criterion(o, batch.y) for o in students) / len(students)
        if teacher is None or self.options.kd_ratio == 0:
            return StepLoss(ce)
        kd = sum(soft_target_loss(o, teacher) for o in students) / len(students)
        return StepLoss(ce + self.options.kd_ratio * kd, {"ce": float(ce.detach()), "kd": float(kd.detach())})

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        return {"members_trained": int((self.counts > 0).sum())}

    def describe(self) -> dict[str, Any]:
        return {**self.options.to_dict(), "members": len(self.members), "space_file_sha256": self.file_sha256,
                "teacher_genes": None if self.teacher_genes is None else list(self.teacher_genes)}

    def notes(self) -> list[str]:
        out = [f"sparse: {len(self.members)} members of {self.options.space_file}, "
               f"{min(self.options.n_sub, len(self.members))} per step"]
        if self.teacher is not None:
            out.append(f"sparse: distilling from teacher {self.options.teacher} (kd_ratio "
                       f"{self.options.kd_ratio:g}" + (", supernet initialised from it)"
                                                       if self.options.init_from_teacher else ")"))
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {"counts": self.counts.tolist(), "space_file_sha256": self.file_sha256}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("space_file_sha256") not in (None, self.file_sha256):
            raise HwnasError(f"sparse-space file {self.options.space_file} changed since the run started; "
                             f"resume with the file it was trained on")
        self.counts = np.asarray(state["counts"], dtype=np.int64)


def _load_teacher(path: str, space: Any) -> tuple[nn.Module, tuple[int, ...]]:
    from hwnas.checkpoint import load_checkpoint
    from hwnas.models import subnet_from_checkpoint

    ckpt = load_checkpoint(path, expect_space=space)
    if ckpt["kind"] != "subnet":
        raise HwnasError(f"teacher {path} is a {ckpt['kind']} checkpoint; the teacher is a subnet trained "
                         f"alone (`hwnas sparse teacher`)")
    sub = subnet_from_checkpoint(path, genes_text=None)
    for p in sub.parameters():
        p.requires_grad_(False)
    return sub.eval(), tuple(int(v) for v in ckpt["genes"])


@torch.no_grad()
def init_from_subnet(supernet: Any, subnet: nn.Module) -> None:
    """Copy a subnet's weights into the supernet modules of its path (inverse of materialize:
    each tensor goes into the prefix of every channel dimension and the centre of the kernel)."""
    for spec, module in zip(subnet.specs, subnet.ops):
        dst = supernet.module_for(spec)
        dst_state = dst.state_dict()
        for name, src in module.state_dict().items():
            t = dst_state.get(name)
            if t is None or t.dim() != src.dim() or any(a > b for a, b in zip(src.shape, t.shape)):
                raise HwnasError(f"cannot initialise the supernet from the teacher: its weight {name} of "
                                 f"{spec.op} has shape {tuple(src.shape)}, the supernet's "
                                 f"{None if t is None else tuple(t.shape)} (use independent or elastic sharing, "
                                 f"or --opt init_from_teacher=false)")
            if t.dim() == 0:
                t.copy_(src)
                continue
            idx = []
            for d, n in enumerate(src.shape):
                start = (t.shape[d] - n) // 2 if t.dim() == 4 and d >= 2 else 0
                idx.append(slice(start, start + n))
            t[tuple(idx)].copy_(src)
