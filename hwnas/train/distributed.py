"""Process-group setup for ``torchrun`` and the few collectives the training loop needs.

``torchrun --nproc_per_node N -m hwnas train ...`` sets ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``;
without them everything runs as a single process (world size 1) and the collectives are no-ops.
Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from hwnas.errors import HwnasError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def resolve_device(name: str | None, local_rank: int = 0) -> torch.device:
    """``cpu`` / ``cuda`` / ``cuda:N``; default CUDA when available."""
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise HwnasError(f"--torch-device must be cpu or cuda, got {name!r}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise HwnasError("--torch-device cuda was asked for but no CUDA device is available; use --torch-device cpu")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device("cpu")


def init_distributed(device: str | None) -> DistInfo:
    """Join the process group when launched by torchrun; otherwise a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world=world, local_rank=local_rank, device=dev)


def shutdown_distributed(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_sum(info: DistInfo, t: torch.Tensor) -> torch.Tensor:
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(info: DistInfo, flag: bool) -> bool:
    """True when ``flag`` is set on any rank (e.g. a signal arrived on one of them)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_buffers(info: DistInfo, module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BN running statistics) to every rank."""
    if info.distributed:
        for b in module.buffers():
            dist.broadcast(b, src=0)


def gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's names, dtypes, shapes and bytes (bit-identity checks)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
