"""``hwnas finetune``: train the chosen subnet stand-alone, as the last step before deployment.

The subnet starts from its inherited supernet weights with BN recalibrated (weight-sharing NAS
fine-tunes the chosen architecture, SPOS Sec. 1), or from random weights (``from_scratch``: SPOS
Sec. 4 retrains the searched architectures from scratch). It trains on the run's data with the
run's recipe (:func:`hwnas.train.loop.build_optimizer` / ``build_scheduler`` / ``build_criterion``
and the run's shuffled, augmented loader). Optional knowledge distillation takes soft targets from
the supernet's largest path, as in-place distillation does (PGONAS Sec. 3.1): loss = CE(labels) +
``kd_ratio`` * CE(softmax(teacher / T), student / T) * T^2.

The output folder holds ``finetune.pt``, a *subnet* checkpoint (weights, genes, class names,
normalization, the run's ``train_config``) that ``hwnas export`` / ``bundle`` read directly; it is
rewritten atomically after every epoch with the optimizer, scheduler and RNG states, so
``resume=True`` continues where an interrupted run stopped (bit-identical on CPU).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from hwnas.errors import HwnasError

CHECKPOINT = "finetune.pt"
SUMMARY = "finetune.json"
#: settings that may differ on --resume (more epochs continue a finished run).
MUTABLE_ON_RESUME = frozenset({"epochs"})


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning settings; ``None`` takes the run's value (``lr``: the run's peak learning rate
    from scratch, a tenth of it from inherited weights)."""

    epochs: int = 10
    lr: float | None = None
    batch_size: int | None = None
    from_scratch: bool = False
    kd: bool = False
    kd_ratio: float = 1.0
    kd_temperature: float = 1.0
    steps_per_epoch: int | None = None
    seed: int = 0
    #: BN recalibration batches of 256 training images, for the subnet and the KD teacher.
    recalibration_batches: int = 20

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.lr is None or self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (self.batch_size is None or self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.kd_ratio >= 0, f"--kd-ratio must be >= 0, got {self.kd_ratio}"),
            (self.kd_temperature > 0, f"--kd-temperature must be > 0, got {self.kd_temperature}"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1,
             f"--steps-per-epoch must be >= 1, got {self.steps_per_epoch}"),
            (self.recalibration_batches >= 1,
             f"recalibration_batches must be >= 1, got {self.recalibration_batches}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise HwnasError(msg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FinetuneResult:
    checkpoint: Path
    epochs_done: int
    steps: int
    accuracy_before: float  # held-out (test split) top-1 of the starting weights
    accuracy: float  # after fine-tuning
    seconds: float


def _kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    t = temperature
    soft = torch.softmax(teacher / t, dim=1)
    return -(soft * F.log_softmax(student / t, dim=1)).sum(1).mean() * t * t


def _teacher(checkpoint: Path, data, batches: int) -> torch.nn.Module:
    """The supernet's largest path, BN recalibrated, frozen."""
    from hwnas.data import take_batches
    from hwnas.models import supernet_from_checkpoint
    from hwnas.supernet import materialize, recalibrate_bn

    net, _ = supernet_from_checkpoint(checkpoint)
    teacher = materialize(net, net.space.largest())
    recalibrate_bn(teacher, take_batches(data.train_clean, 256, max_batches=batches, seed=0))
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


def _accuracy(model, data) -> float:
    from hwnas.data import take_batches
    from hwnas.train.evaluate import evaluate_model

    with torch.no_grad():
        return evaluate_model(model.eval(), take_batches(data.test, 256)).top1


def finetune(checkpoint: str | Path, genes_text: str | None, out: str | Path,
             config: FinetuneConfig = FinetuneConfig(), *, resume: bool = False,
             data_root: str | None = None, progress=None) -> FinetuneResult:
    """Fine-tune subnet ``genes_text`` of ``checkpoint`` into ``out/finetune.pt`` (see module doc).

    The folder ``out`` is locked meanwhile: a second fine-tune into it is refused."""
    from hwnas.locking import folder_lock

    if Path(out).exists() and not Path(out).is_dir():
        raise HwnasError(f"--out {out} exists and is not a folder")
    with folder_lock(out):
        return _finetune(checkpoint, genes_text, out, config, resume=resume, data_root=data_root,
                         progress=progress)


def _finetune(checkpoint: str | Path, genes_text: str | None, out: str | Path,
              config: FinetuneConfig, *, resume: bool, data_root: str | None,
              progress) -> FinetuneResult:
    from hwnas.checkpoint import load_checkpoint, save_checkpoint
    from hwnas.data import train_loader
    from hwnas.data.loaders import steps_per_epoch as count_steps
    from hwnas.deploy.source import load_source
    from hwnas.io import atomic_write_json
    from hwnas.supernet import Subnet
    from hwnas.train.loop import build_criterion, build_optimizer, build_scheduler, capture_rng, restore_rng

    from hwnas.io import check_writable_dir

    out = check_writable_dir(out)  # before the checkpoint and the data are loaded
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists() and not resume:
        raise HwnasError(f"{ckpt_path} exists: pass --resume to continue it, or choose another --out")
    if resume and not ckpt_path.is_file():
        raise HwnasError(f"--resume: {ckpt_path} does not exist")
    state, ft = None, {}
    if resume:  # settings checked before the (slow) source loading and BN recalibration
        state = load_checkpoint(ckpt_path)
        ft = state.get("finetune") or {}
        stored = FinetuneConfig(**ft.get("config", {}))
        diff = [k for k in stored.to_dict() if k not in MUTABLE_ON_RESUME
                and stored.to_dict()[k] != config.to_dict()[k]]
        if diff:
            raise HwnasError(f"--resume: {ckpt_path} was fine-tuned with a different {diff[0]}")
    src = load_source(checkpoint, genes_text, calib_batches=config.recalibration_batches)
    if src.kind != "supernet":
        raise HwnasError(f"checkpoint {checkpoint} holds a {src.kind}; finetune starts from a supernet "
                         f"checkpoint and its genes")
    if src.train_config is None:
        raise HwnasError(f"checkpoint {checkpoint} has no training settings (train_config)")
    run, data = src.train_config, src.data
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    model = Subnet(src.space, src.genes) if config.from_scratch else src.model
    if state is not None and tuple(state["genes"]) != src.genes:
        raise HwnasError(f"--resume: {ckpt_path} was fine-tuned with different genes")
    accuracy_before = float(ft["accuracy_before"]) if state is not None else _accuracy(model, data)
    teacher = _teacher(Path(checkpoint), data, config.recalibration_batches) if config.kd else None
    batch = config.batch_size or run.batch_size
    per_epoch = count_steps(len(data.train), batch)
    if config.steps_per_epoch is not None:
        per_epoch = min(per_epoch, config.steps_per_epoch)
    if per_epoch < 1:
        raise HwnasError(f"batch size {batch} exceeds the {len(data.train)} training images")
    lr = config.lr or (run.base_lr(1) if config.from_scratch else run.base_lr(1) / 10)
    recipe = run.replace(batch_size=batch)
    optimizer = build_optimizer(model, recipe, lr)
    scheduler = build_scheduler(optimizer, config.epochs * per_epoch)
    criterion = build_criterion(recipe)
    start_epoch, steps = 0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(ft["optimizer"])
        scheduler.load_state_dict(ft["scheduler"])
        for group, group_lr in zip(optimizer.param_groups, scheduler.get_last_lr()):
            group["lr"] = group_lr  # where the interrupted run stood (the constructor reset it)
        start_epoch, steps = int(ft["epoch"]), int(ft["steps"])
        restore_rng(ft["rng"], torch.device("cpu"))
    for epoch in range(start_epoch, config.epochs):
        model.train()
        loader = train_loader(data.train, batch_size=batch, seed=config.seed, epoch=epoch)
        for b, (x, y) in enumerate(loader):
            if b >= per_epoch:
                break
            logits = model(x)
            loss = criterion(logits, y)
            if teacher is not None:
                with torch.no_grad():
                    soft = teacher(x)
                loss = loss + config.kd_ratio * _kd_loss(logits, soft, config.kd_temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            steps += 1
        model.eval()
        extra = {
            "train_config": run.to_dict(), "class_names": list(src.class_names),
            "mean": list(src.mean), "std": list(src.std), "source_checkpoint": str(checkpoint),
            "finetune": {"config": config.to_dict(), "epoch": epoch + 1, "steps": steps, "lr": lr,
                         "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                         "rng": capture_rng(torch.device("cpu")), "accuracy_before": accuracy_before},
        }
        save_checkpoint(ckpt_path, kind="subnet", space=src.space, model_state=model.state_dict(),
                        genes=src.genes, extra=extra)
        if progress is not None:
            progress(epoch + 1, config.epochs, float(loss))
    accuracy = _accuracy(model, data)
    result = FinetuneResult(ckpt_path, config.epochs, steps, accuracy_before, accuracy,
                            time.perf_counter() - t0)
    atomic_write_json(out / SUMMARY, {
        "checkpoint": str(ckpt_path), "source_checkpoint": str(checkpoint), "genes": list(src.genes),
        "space": src.space.config(), "config": config.to_dict(), "lr": lr, "steps": steps,
        "epochs": config.epochs, "test_top1_before": accuracy_before, "test_top1": accuracy,
        "data": run.data})
    return result


__all__ = ["CHECKPOINT", "FinetuneConfig", "FinetuneResult", "finetune"]
