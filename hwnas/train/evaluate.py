"""Evaluating subnets with inherited supernet weights (SPOS Sec. 3.3).

Each subnet is materialized (a plain copy of its weights), its BatchNorm statistics are
recalibrated on training images, then it is evaluated. The supernet itself, its weights and its
BN buffers are never modified. :class:`SubnetEvaluator` is the batched, cached entry point used by
search: it holds the evaluation and calibration batches in memory (on the device) and evaluates
each genes tuple once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.supernet import Supernet, materialize, recalibrate_bn

Batch = tuple[torch.Tensor, torch.Tensor]

#: SPOS recalibrates BN on "a random subset of training data (20000 images on ImageNet)":
#: 20 batches of the paper's 1024 images.
DEFAULT_CALIB_BATCHES = 20


@dataclass(frozen=True)
class EvalResult:
    """Accuracy as fractions in [0, 1]; ``loss`` is the mean cross-entropy; ``n`` images."""

    top1: float
    top5: float
    loss: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def evaluate_model(model: nn.Module, eval_batches: Iterable[Batch], device: str | torch.device = "cpu") -> EvalResult:
    """Top-1 / top-5 / mean cross-entropy of ``model`` (in eval mode) over ``eval_batches``."""
    model.eval()
    correct1 = correct5 = 0
    loss_sum, n = 0.0, 0
    for x, y in eval_batches:
        x, y = x.to(device), y.to(device)
        logits = model(x).float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit = top.eq(y[:, None])
        correct1 += int(hit[:, 0].sum())
        correct5 += int(hit.any(dim=1).sum())
        n += int(y.numel())
    if n == 0:
        return EvalResult(float("nan"), float("nan"), float("nan"), 0)
    return EvalResult(correct1 / n, correct5 / n, loss_sum / n, n)


def evaluate_subnet(supernet: Supernet, genes: Sequence[int], eval_batches: Iterable[Batch],
                    calib_batches: Iterable[Any] | None, device: str | torch.device = "cpu") -> EvalResult:
    """Materialize ``genes``, recalibrate its BN on ``calib_batches`` (training images; skipped
    when ``None``), and evaluate it on ``eval_batches``. The supernet is left untouched."""
    sub = materialize(supernet, genes).to(device)
    if calib_batches is not None:
        recalibrate_bn(sub, calib_batches)
    return evaluate_model(sub.eval(), eval_batches, device)


class SubnetEvaluator:
    """Batched, cached subnet evaluation for search: ``evaluator(genes)`` / ``evaluator.many(list)``.

    The batches are read once and kept on ``device``; results are cached per genes tuple
    (``evaluations`` counts the subnets actually evaluated).
    """

    def __init__(self, supernet: Supernet, eval_batches: Iterable[Batch],
                 calib_batches: Iterable[Any] | None, device: str | torch.device = "cpu") -> None:
        self.supernet = supernet
        self.device = torch.device(device)
        self.space = supernet.space
        self.eval_batches = [(x.to(self.device), y.to(self.device)) for x, y in eval_batches]
        self.calib_batches = None if calib_batches is None else [
            (b[0] if isinstance(b, (tuple, list)) else b).to(self.device) for b in calib_batches]
        self.cache: dict[tuple[int, ...], EvalResult] = {}
        self.evaluations = 0

    def __call__(self, genes: Sequence[int]) -> EvalResult:
        key = self.space.validate(genes)
        hit = self.cache.get(key)
        if hit is None:
            hit = evaluate_subnet(self.supernet, key, self.eval_batches, self.calib_batches, self.device)
            self.cache[key] = hit
            self.evaluations += 1
        return hit

    def many(self, genes_list: Iterable[Sequence[int]]) -> list[EvalResult]:
        return [self(g) for g in genes_list]

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, *, split: str = "search-val", batch_size: int = 256,
                        calib_batches: int = DEFAULT_CALIB_BATCHES, device: str | None = None,
                        data_root: str | None = None, max_images: int | None = None) -> SubnetEvaluator:
        """An evaluator for a supernet training checkpoint on ``split`` of the run's own dataset."""
        from hwnas.models import supernet_from_checkpoint
        from hwnas.train.distributed import resolve_device

        net, ckpt = supernet_from_checkpoint(checkpoint)
        dev = resolve_device(device)
        ev, cal = eval_data(ckpt, checkpoint, split=split, batch_size=batch_size,
                            calib_batches=calib_batches, data_root=data_root, max_images=max_images)
        return cls(net.to(dev), ev, cal, dev)


def eval_data(ckpt: dict[str, Any], path: str | Path, *, split: str = "search-val", batch_size: int = 256,
              calib_batches: int = DEFAULT_CALIB_BATCHES, data_root: str | None = None,
              max_images: int | None = None, data: str | None = None) -> tuple[list[Batch], list[Batch] | None]:
    """Evaluation batches of ``split`` and BN-calibration batches (a seeded random subset of the
    training images, evaluation transform) for the run a checkpoint came from.

    The dataset is the training run's own (``train_config`` in the checkpoint) unless ``data``
    names another; a supernet checkpoint without a training config uses ``data`` (default
    ``digits``). The calibration subset is seeded with 0, so a subnet's accuracy does not depend
    on who asks for it.
    """
    from hwnas.data import load_data, take_batches
    from hwnas.errors import HwnasError
    from hwnas.train.loop import data_for, train_config_of

    if calib_batches < 0:
        raise HwnasError(f"--calib-batches must be >= 0, got {calib_batches}")
    if batch_size < 1:
        raise HwnasError(f"--batch-size must be >= 1, got {batch_size}")
    space = ckpt["space"]
    in_channels = space.get("in_channels", 3)
    if "train_config" in ckpt or ckpt.get("kind") != "supernet":
        config = train_config_of(ckpt, path)  # a subnet checkpoint has no run to take data from
        if data is not None:
            config = config.replace(data=data)
        if data_root is not None:
            config = config.replace(data_root=str(data_root))
        splits = data_for(config, space["resolution"], in_channels)
    else:
        splits = load_data(data or "digits", resolution=space["resolution"], in_channels=in_channels,
                           root=data_root)
    if splits.num_classes != space.get("num_classes", splits.num_classes):
        raise HwnasError(f"dataset {splits.name!r} has {splits.num_classes} classes, the supernet in {path} "
                         f"{space['num_classes']}: pass the dataset it was trained on (--data)")
    ds = splits.split(split)
    max_batches = None if max_images is None else max(1, -(-max_images // batch_size))
    ev = take_batches(ds, batch_size, max_batches=max_batches)
    cal = take_batches(splits.train_clean, batch_size, max_batches=calib_batches, seed=0) if calib_batches else None
    return ev, cal


def evaluate_many(supernet: Supernet, genes_list: Iterable[Sequence[int]], eval_batches: Iterable[Batch],
                  calib_batches: Iterable[Any] | None, device: str | torch.device = "cpu") -> list[EvalResult]:
    """Evaluate many subnets on the same batches (see :class:`SubnetEvaluator`)."""
    return SubnetEvaluator(supernet, eval_batches, calib_batches, device).many(genes_list)
