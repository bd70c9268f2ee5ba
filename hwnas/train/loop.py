"""The one supernet training loop; strategies plug in as path samplers (:mod:`hwnas.train.samplers`).

A run lives in one folder (``--out runs/NAME``):

* ``config.json``: the :class:`~hwnas.train.config.TrainConfig`, the space, the data splits and
  :func:`~hwnas.checkpoint.version_stamp`;
* ``metrics.jsonl``: one JSON object per line: ``kind`` = ``step`` (every ``log_every`` steps),
  ``epoch`` (epoch summaries with sampler statistics), ``resume``, ``stop`` and ``final`` (with a
  digest of the weights of every rank);
* ``last.pt``: written atomically after every epoch and on SIGINT / SIGTERM (after the current
  step; the process then exits 130 / 143). It holds the weights, optimizer, scheduler, AMP scaler,
  sampler and RNG states and the position in the data order, so ``--resume`` continues exactly:
  on CPU with the same settings a resumed run ends bit-identical to a straight one.
* ``pool.json``: the GreedyNAS candidate pool, best first (``greedy`` only).

Distributed: under ``torchrun`` the supernet is wrapped in ``DistributedDataParallel`` with
``find_unused_parameters=True``. A step runs one path, so most supernet parameters take no part
in it; DDP then finds them by walking the autograd graph, all-reduces the used ones and leaves the
gradients of globally unused ones untouched (``None``), so SGD skips them exactly as in a
single-process run (no momentum or weight decay on untrained candidates). This is correct because
every rank runs the *same* path: each sampler draws from its own RNG seeded identically on every
rank, and GreedyNAS path scores are all-reduced before ranking. BN buffers follow rank 0
(DDP ``broadcast_buffers``). The data are sharded with ``DistributedSampler``; rank 0 logs and
checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

from hwnas.checkpoint import load_checkpoint, save_checkpoint, version_stamp
from hwnas.data import DataSplits, load_data, take_batches, train_loader
from hwnas.data.loaders import steps_per_epoch as count_steps
from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json, atomic_write_text
from hwnas.spaces import create_space
from hwnas.spaces.base import SearchSpace
from hwnas.supernet import Supernet, build_supernet
from hwnas.train import distributed as D
from hwnas.train.config import TrainConfig
from hwnas.train.samplers import CostFn, SamplerContext, create_sampler

CHECKPOINT = "last.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
POOL = "pool.json"
#: settings that may change when a run is resumed; any other difference is an error.
MUTABLE_ON_RESUME = frozenset({"epochs", "workers", "log_every", "data_root", "download", "amp",
                               "early_stop"})
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class TrainingInterrupted(Exception):
    """SIGINT / SIGTERM arrived: the checkpoint is written; exit with ``exit_code`` (130 / 143)."""

    def __init__(self, signum: int, checkpoint: Path) -> None:
        self.exit_code = SIGNAL_EXIT.get(signum, 130)
        self.checkpoint = checkpoint
        name = signal.Signals(signum).name
        super().__init__(f"{name}: stopped after the current step; checkpoint {checkpoint} "
                         f"(continue with --resume)")


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epochs_done: int
    steps: int
    stopped_early: bool
    stop_reason: str
    final_loss: float | None
    seconds: float
    weights_digest: str
    metrics: list[dict[str, Any]] = field(default_factory=list)
    rank: int = 0


# ---- building blocks (shared with stand-alone subnet training in rank_check) ---------------------
def build_optimizer(model: nn.Module, config: TrainConfig, lr: float) -> torch.optim.SGD:
    """SGD, momentum 0.9, Nesterov (GreedyNAS Sec. 5.1); weight decay on conv / linear weights only."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum,
                           nesterov=config.nesterov and config.momentum > 0)


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine annealing to 0 over ``total_steps``, stepped every iteration (GreedyNAS Sec. 5.1)."""
    total = max(1, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total)))


def build_criterion(config: TrainConfig) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


def space_for(config: TrainConfig, num_classes: int) -> SearchSpace:
    return create_space(config.space, width=config.width, resolution=config.resolution,
                        num_classes=num_classes)


def data_for(config: TrainConfig, resolution: int | None = None, in_channels: int = 3) -> DataSplits:
    """The dataset splits of a run (at the space's resolution)."""
    if resolution is None:
        resolution = create_space(config.space, width=config.width, resolution=config.resolution).resolution
    return load_data(config.data, resolution=resolution, in_channels=in_channels,
                     root=config.data_root, download=config.download, split_seed=config.split_seed)


def autocast(dev: torch.device, enabled: bool) -> Any:
    """float16 autocast on CUDA when AMP is on; a no-op context otherwise."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=torch.float16)


# ---- RNG state (stored as tensors / lists / ints: loadable with weights_only=True) ---------------
def capture_rng(device: torch.device) -> dict[str, Any]:
    v, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [v, list(internal), gauss],
        "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
    }
    if device.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def restore_rng(st: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(st["torch"])
    v, internal, gauss = st["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = st["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if device.type == "cuda" and "cuda" in st:
        torch.cuda.set_rng_state_all(st["cuda"])


# ---- run folder ------------------------------------------------------------------------------
def read_run_config(out: str | Path) -> TrainConfig:
    """The configuration of an existing run (``config.json``, else the checkpoint)."""
    out = Path(out)
    cfg_file = out / CONFIG
    if cfg_file.is_file():
        try:
            return TrainConfig.from_dict(json.loads(cfg_file.read_text(encoding="utf-8"))["train"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HwnasError(f"cannot read {cfg_file}: {exc}") from None
    ckpt = load_checkpoint(out / CHECKPOINT)
    return train_config_of(ckpt, out / CHECKPOINT)


def train_config_of(ckpt: dict[str, Any], path: Path | str) -> TrainConfig:
    if ckpt.get("kind") != "supernet" or "train_config" not in ckpt:
        raise HwnasError(f"checkpoint {path} is not a supernet training checkpoint (no train_config)")
    return TrainConfig.from_dict(ckpt["train_config"])


def _check_run_dir(out: Path, resume: bool) -> None:
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise HwnasError(f"--resume: {out / CHECKPOINT} does not exist (nothing to resume)")
        return
    if out.exists() and not out.is_dir():
        raise HwnasError(f"--out {out} exists and is not a folder")
    if (out / CHECKPOINT).exists() or (out / CONFIG).exists():
        raise HwnasError(f"--out {out} already holds a run; pass --resume to continue it "
                         f"or choose another --out")


def _check_resume_config(stored: TrainConfig, given: TrainConfig, out: Path) -> None:
    a, b = stored.to_dict(), given.to_dict()
    for key in a:
        if key not in MUTABLE_ON_RESUME and a[key] != b[key]:
            flag = key.replace("_", "-")
            raise HwnasError(f"run {out} was trained with {flag}={a[key]!r}; cannot resume it with "
                             f"{flag}={b[key]!r} (start a new --out instead)")


def write_pool_json(path: Path, pool: dict[str, Any]) -> None:
    """``pool.json``: the header as usual, one candidate per line (best first)."""
    head = {k: v for k, v in pool.items() if k != "entries"}
    lines = ",\n    ".join(json.dumps(e) for e in pool["entries"])
    text = json.dumps(head, indent=2)[:-2] + ',\n  "entries": [\n    ' + lines + "\n  ]\n}\n"
    atomic_write_text(path, text)


class _MetricsLog:
    """Append-only JSON lines, written by rank 0."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (a resumed run re-logs them)."""
        if not self.enabled or not self.path.exists():
            return
        keep = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash
            if int(rec.get("step", 0)) <= step:
                keep.append(line)
        atomic_write_text(self.path, "".join(k + "\n" for k in keep))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")


class _SignalGuard:
    """Turns SIGINT / SIGTERM into a flag checked after each step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNAL_EXIT:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def make_score_fn(net: Supernet, images: torch.Tensor, labels: torch.Tensor, total: int,
                  info: D.DistInfo, batch_size: int, use_amp: bool) -> Callable[[Sequence], np.ndarray]:
    """GreedyNAS path scoring (seed 002, Sec. 3.2): mean cross-entropy of each path on the fixed
    scoring batch, supernet in eval mode. Each rank scores its shard; sums are all-reduced, so all
    ranks rank the paths identically."""
    dev = info.device

    def score(paths: Sequence) -> np.ndarray:
        uniq = list(dict.fromkeys(tuple(p) for p in paths))
        sums = torch.zeros(len(uniq), dtype=torch.float64, device=dev)
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad(), autocast(dev, use_amp):
                for j, g in enumerate(uniq):
                    for i in range(0, images.shape[0], batch_size):
                        out = net(images[i:i + batch_size], g)
                        sums[j] += F.cross_entropy(out.float(), labels[i:i + batch_size],
                                                   reduction="sum").double()
        finally:
            net.train(was_training)
        D.all_reduce_sum(info, sums)
        by_path = dict(zip(uniq, (sums / total).cpu().tolist()))
        return np.array([by_path[tuple(p)] for p in paths], dtype=np.float64)

    return score


def _score_batch(data: DataSplits, config: TrainConfig, info: D.DistInfo) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The fixed search-val scoring images (GreedyNAS: 1000 validation images), this rank's shard."""
    n = min(config.score_batch, len(data.search_val))
    batches = take_batches(data.search_val, batch_size=n, max_batches=1, seed=config.seed + 7919)
    x, y = batches[0]
    x, y = x[info.rank::info.world], y[info.rank::info.world]
    return x.to(info.device), y.to(info.device), n


# ---- the loop --------------------------------------------------------------------------------
def train_supernet(config: TrainConfig, out: str | Path, *, resume: bool = False,
                   device: str | None = None, cost_fn: CostFn | None = None, quiet: bool = False,
                   stop_after_epochs: int | None = None, console: Console | None = None) -> TrainResult:
    """Train a supernet with ``config.strategy`` into the run folder ``out``.

    ``resume`` continues ``out/last.pt`` (``config`` must match the stored one except for
    :data:`MUTABLE_ON_RESUME`). ``cost_fn(genes_matrix) -> array`` replaces MACs in the
    ``constrained`` sampler (e.g. a latency predictor). ``stop_after_epochs`` ends this invocation
    cleanly after that many epochs (time-sliced jobs; continue with ``resume``).
    Raises :class:`TrainingInterrupted` after checkpointing on SIGINT / SIGTERM.
    """
    out = Path(out)
    t_start = time.perf_counter()
    info = D.init_distributed(device)
    try:
        _check_run_dir(out, resume)
        D.barrier(info)  # every rank has checked the folder before rank 0 writes into it
        return _train(config, out, resume, info, cost_fn, quiet, stop_after_epochs,
                      console or Console(stderr=True), t_start)
    finally:
        D.shutdown_distributed(info)


def _train(config: TrainConfig, out: Path, resume: bool, info: D.DistInfo, cost_fn: CostFn | None,
           quiet: bool, stop_after_epochs: int | None, console: Console, t_start: float) -> TrainResult:
    dev = info.device
    if config.amp and dev.type != "cuda":
        raise HwnasError("--amp needs a CUDA device (float16 autocast + GradScaler); "
                         "on CPU train without --amp")
    ckpt = None
    if resume:
        ckpt = load_checkpoint(out / CHECKPOINT, map_location="cpu")
        _check_resume_config(train_config_of(ckpt, out / CHECKPOINT), config, out)

    # data and space (the dataset decides the number of classes)
    res_space = create_space(config.space, width=config.width, resolution=config.resolution)
    if config.download and info.distributed and not info.is_main:
        D.barrier(info)  # rank 0 downloads first
    data = data_for(config, res_space.resolution, res_space.in_channels)
    if config.download and info.distributed and info.is_main:
        D.barrier(info)
    space = space_for(config, data.num_classes)
    if ckpt is not None and ckpt["space"] != space.config():
        raise HwnasError(f"checkpoint {out / CHECKPOINT} is for space {ckpt['space']}, "
                         f"not {space.config()}")
    per_epoch = count_steps(len(data.train), config.batch_size, info.world)
    if per_epoch == 0:
        raise HwnasError(f"--batch-size {config.batch_size} x {info.world} process(es) is larger than "
                         f"the training split of {data.name} ({len(data.train)} images)")
    if config.steps_per_epoch is not None:
        per_epoch = min(per_epoch, config.steps_per_epoch)
    total_steps = config.epochs * per_epoch
    lr = config.base_lr(info.world)

    # model, optimizer, schedule
    torch.manual_seed(config.seed)
    net = build_supernet(space, config.sharing).to(dev)
    optimizer = build_optimizer(net, config, lr)
    scheduler = build_scheduler(optimizer, total_steps)
    use_amp = config.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = build_criterion(config)

    score_fn = None
    if config.strategy == "greedy":
        sx, sy, sn = _score_batch(data, config, info)
        score_fn = make_score_fn(net, sx, sy, sn, info, config.batch_size, use_amp)
    sampler_opts = config.sampler_options(per_epoch, total_steps)
    sampler = create_sampler(config.strategy, space,
                             SamplerContext(seed=config.seed, total_steps=total_steps,
                                            steps_per_epoch=per_epoch, score_fn=score_fn,
                                            cost_fn=cost_fn),
                             **sampler_opts)

    epoch, batch_in_epoch, step = 0, 0, 0
    history: list[dict[str, Any]] = []
    log = _MetricsLog(out / METRICS, info.is_main)
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"] and use_amp:  # empty when the run was saved without AMP
            scaler.load_state_dict(ckpt["scaler"])
        sampler.load_state_dict(ckpt["sampler"])
        restore_rng(ckpt["rng"], dev)
        epoch, batch_in_epoch, step = int(ckpt["epoch"]), int(ckpt["batch_in_epoch"]), int(ckpt["step"])
        history = list(ckpt.get("metrics", []))
        for g in optimizer.param_groups:  # a changed --epochs changes the schedule length only
            g.setdefault("initial_lr", lr)
        log.truncate_after(step)
        log.write({"kind": "resume", "epoch": epoch, "step": step, "time": time.time()})
    del ckpt

    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / CONFIG, {
            "train": config.to_dict(), "space": space.config(), "data": data.describe(),
            "world_size": info.world, "device": str(dev), "lr": lr, "steps_per_epoch": per_epoch,
            "total_steps": total_steps, "sampler": {k: (list(v) if isinstance(v, tuple) else v)
                                                    for k, v in sampler_opts.items()},
            "versions": version_stamp()})

    model: nn.Module = net
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[dev.index] if dev.type == "cuda" else None, find_unused_parameters=True)

    def save(final: bool = False) -> None:
        if not info.is_main:
            return
        extra = {
            "train_config": config.to_dict(), "strategy": config.strategy, "sharing": net.sharing,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "sampler": sampler.state_dict(), "rng": capture_rng(dev),
            "epoch": epoch, "batch_in_epoch": batch_in_epoch, "step": step, "metrics": history,
            "data": data.describe(), "world_size": info.world, "finished": final,
        }
        save_checkpoint(out / CHECKPOINT, kind="supernet", space=space, model_state=net.state_dict(),
                        extra=extra)
        if hasattr(sampler, "pool_json"):
            write_pool_json(out / POOL, sampler.pool_json())

    show_bar = not quiet and info.is_main and console.is_terminal
    say = (lambda msg: console.print(msg, highlight=False, soft_wrap=True)) if (info.is_main and not quiet) else (lambda msg: None)
    if info.is_main:
        say(f"training {space.name} supernet ({config.strategy}, {config.sharing} weights) on {data.name}: {per_epoch} steps/epoch x "
            f"{config.epochs} epochs, batch {config.batch_size} x {info.world}, lr {lr:.4g}, "
            f"device {dev}" + (f", resuming at epoch {epoch} step {step}" if resume else ""))

    epochs_this_run = 0
    last_loss: float | None = None
    stopped_early = sampler.should_stop
    stop_reason = sampler.stop_reason
    net.train()
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[ips]} img/s"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                        disable=not show_bar)
    with _SignalGuard() as guard, progress:
        task = progress.add_task("train", total=total_steps, completed=step, loss="-", ips="-")
        while epoch < config.epochs and not stopped_early:
            if stop_after_epochs is not None and epochs_this_run >= stop_after_epochs:
                break
            loader = train_loader(data.train, batch_size=config.batch_size, seed=config.seed, epoch=epoch,
                                  rank=info.rank, world=info.world, workers=config.workers,
                                  skip_batches=batch_in_epoch, pin_memory=dev.type == "cuda")
            t_epoch = t_log = time.perf_counter()
            ep_loss, ep_n, log_loss, log_n = 0.0, 0, 0.0, 0
            ep_start_batch = batch_in_epoch
            progress.update(task, description=f"epoch {epoch + 1}/{config.epochs}")
            for x, y in loader:
                if batch_in_epoch >= per_epoch:
                    break
                x = x.to(dev, non_blocking=True)
                y = y.to(dev, non_blocking=True)
                paths = sampler.paths(step)
                if info.distributed and len(paths) != 1:
                    raise HwnasError(f"strategy {config.strategy!r} trains {len(paths)} paths per step; "
                                     f"only one path per step is supported under DDP")
                optimizer.zero_grad(set_to_none=True)
                loss_val = 0.0
                for g in paths:
                    with autocast(dev, use_amp):
                        loss = criterion(model(x, g), y) / len(paths)
                    scaler.scale(loss).backward()
                    loss_val += float(loss.detach())
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                batch_in_epoch += 1
                ep_loss, ep_n, log_loss, log_n = ep_loss + loss_val, ep_n + 1, log_loss + loss_val, log_n + 1
                last_loss = loss_val
                if step % config.log_every == 0:
                    now = time.perf_counter()
                    ips = log_n * config.batch_size * info.world / max(now - t_log, 1e-9)
                    log.write({"kind": "step", "epoch": epoch, "step": step, "loss": log_loss / log_n,
                               "lr": optimizer.param_groups[0]["lr"], "images_per_s": round(ips, 1),
                               **sampler.stats()})
                    t_log, log_loss, log_n = now, 0.0, 0
                if show_bar:
                    ips_epoch = ((batch_in_epoch - ep_start_batch) * config.batch_size * info.world
                                 / max(time.perf_counter() - t_epoch, 1e-9))
                    progress.update(task, advance=1, loss=f"{loss_val:.3f}", ips=f"{ips_epoch:.0f}")
                if D.any_rank(info, guard.signum is not None):
                    signum = guard.signum or signal.SIGTERM
                    save()
                    D.barrier(info)
                    log.write({"kind": "stop", "epoch": epoch, "step": step,
                               "signal": signal.Signals(signum).name})
                    raise TrainingInterrupted(signum, out / CHECKPOINT)
            seconds = time.perf_counter() - t_epoch
            epoch_stats = sampler.end_epoch(epoch)
            if info.distributed:  # mean training loss over all ranks
                t = D.all_reduce_sum(info, torch.tensor([ep_loss, float(ep_n)], dtype=torch.float64,
                                                        device=dev))
                ep_loss, ep_n = float(t[0]), int(t[1])
            summary = {"kind": "epoch", "epoch": epoch, "step": step,
                       "loss": ep_loss / ep_n if ep_n else None, "lr": optimizer.param_groups[0]["lr"],
                       "images_per_s": round((batch_in_epoch - ep_start_batch) * config.batch_size
                                             * info.world / max(seconds, 1e-9), 1),
                       "seconds": round(seconds, 2), **sampler.stats(), **epoch_stats}
            history.append(summary)
            log.write(summary)
            say(f"epoch {epoch + 1}/{config.epochs}  step {step}  loss {summary['loss'] or float('nan'):.4f}  "
                f"lr {summary['lr']:.4g}  {summary['images_per_s']:.0f} img/s"
                + "".join(f"  {k} {v}" for k, v in {**sampler.stats(), **epoch_stats}.items()))
            epoch += 1
            batch_in_epoch = 0
            epochs_this_run += 1
            if sampler.should_stop:
                stopped_early, stop_reason = True, sampler.stop_reason
                log.write({"kind": "stop", "epoch": epoch - 1, "step": step, "reason": stop_reason})
                say(f"early stop: {stop_reason}")
            save(final=epoch >= config.epochs or stopped_early)

    # every rank reports a digest of its weights; identical digests prove the ranks agree
    D.broadcast_buffers(info, net)
    digests = D.gather_objects(info, D.state_digest(net.state_dict()))
    finished = epoch >= config.epochs or stopped_early
    log.write({"kind": "final", "epoch": epoch, "step": step, "finished": finished,
               "weights_digest": digests[0], "rank_digests": digests,
               "seconds": round(time.perf_counter() - t_start, 2)})
    if finished and not epochs_this_run:
        say(f"run {out} had already finished ({epoch} epochs); nothing to do")
    D.barrier(info)
    return TrainResult(run_dir=out, epochs_done=epoch, steps=step, stopped_early=stopped_early,
                       stop_reason=stop_reason, final_loss=last_loss,
                       seconds=time.perf_counter() - t_start, weights_digest=digests[0], metrics=history,
                       rank=info.rank)
