"""The one supernet training loop; strategies plug in through :mod:`hwnas.train.strategies`.

Per step the strategy chooses the paths, the loop runs them in one forward call of the
:class:`~hwnas.train.strategies.TrainModel` (supernet + the strategy's modules), the strategy turns
the outputs into one loss, and the loop does one backward and steps the supernet's optimizer and
the strategy's own optimizers. The loop keeps setup, data, checkpoints and logging.

A run lives in one folder (``--out runs/NAME``):

* ``config.json``: the :class:`~hwnas.train.config.TrainConfig` (recipe settings filled in), the
  recipe it used, the strategy's resolved settings, the space, the data splits and
  :func:`~hwnas.checkpoint.version_stamp`;
* ``metrics.jsonl``: one JSON object per line: ``kind`` = ``step`` (every ``log_every`` steps),
  ``epoch`` (epoch summaries with strategy statistics), ``resume``, ``stop`` and ``final`` (with a
  digest of the weights of every rank);
* ``last.pt``: written atomically after every epoch and on SIGINT / SIGTERM (after the current
  step; the process then exits 130 / 143). It holds the weights, the strategy's modules, all
  optimizers and schedulers, the AMP scaler, the strategy and RNG states and the position in the
  data order, so ``--resume`` continues exactly: on CPU with the same settings a resumed run ends
  bit-identical to a straight one.
* files the strategy writes (``pool.json``: the GreedyNAS candidate pool, best first).

Distributed: under ``torchrun`` the train model is wrapped in ``DistributedDataParallel`` with
``find_unused_parameters=True``. All paths of a step run inside one DDP forward and one backward,
so multi-path steps are accepted; parameters no path used take no gradient (``None``), so SGD
skips them exactly as in a single-process run (no momentum or weight decay on untrained
candidates). This is correct because every rank runs the *same* paths: each strategy draws from
its own RNG seeded identically on every rank (GreedyNAS path scores are all-reduced before
ranking). BN buffers follow rank 0 (DDP ``broadcast_buffers``). The data are sharded with
``DistributedSampler``; rank 0 logs and checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from hwnas.checkpoint import load_checkpoint, save_checkpoint, version_stamp
from hwnas.data import DataSplits, load_data, train_loader
from hwnas.data.loaders import steps_per_epoch as count_steps
from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json, atomic_write_text
from hwnas.locking import folder_lock
from hwnas.spaces import create_space
from hwnas.spaces.base import SearchSpace
from hwnas.supernet import build_supernet
from hwnas.train import distributed as D
from hwnas.train.config import TrainConfig
from hwnas.train.strategies import (CostFn, CostFns, RunContext, StepBatch, Strategy, TrainModel,
                                    create_strategy, parse_strategy_options, strategy_class)
from hwnas.ui import note

CHECKPOINT = "last.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
#: settings that may change when a run is resumed; any other difference is an error (the
#: strategy's own resumable options: ``Options.MUTABLE_ON_RESUME``).
MUTABLE_ON_RESUME = frozenset({"epochs", "workers", "log_every", "data_root", "download", "amp",
                               "tables_dir"})
#: a batch may hold at most this fraction of the training split (else one epoch is a few steps)
MAX_BATCH_FRACTION = 0.25
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class TrainingInterrupted(Exception):
    """SIGINT / SIGTERM arrived: the checkpoint is written; exit with ``exit_code`` (130 / 143)."""

    def __init__(self, signum: int, checkpoint: Path) -> None:
        self.exit_code = SIGNAL_EXIT.get(signum, 130)
        self.checkpoint = checkpoint
        self.signal_name = name = signal.Signals(signum).name
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


def lr_factor(step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """Linear warm-up from 0 over ``warmup_steps``, then cosine annealing to 0 at ``total_steps``
    (GreedyNAS Sec. 5.1), as a factor of the peak rate."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, span) / span))


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                    warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """:func:`lr_factor` as a scheduler stepped every iteration."""
    total, warm = max(1, total_steps), max(0, int(warmup_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warm))


def build_criterion(config: TrainConfig) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


def space_for(config: TrainConfig, num_classes: int) -> SearchSpace:
    return create_space(config.space, width=config.width, resolution=config.resolution, act=config.act,
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


def _check_run_dir(out: Path, resume: bool) -> tuple[bool, str | None]:
    """(whether there is a checkpoint to resume, a note to print). A folder holding ``config.json``
    but no checkpoint (a run killed in its first epoch) starts again from scratch, with or
    without ``resume``: it holds no training yet."""
    if out.exists() and not out.is_dir():
        raise HwnasError(f"--out {out} exists and is not a folder")
    if (out / CHECKPOINT).is_file():
        if resume:
            return True, None
        raise HwnasError(f"--out {out} already holds a run; pass --resume to continue it "
                         f"or choose another --out")
    if (out / CONFIG).exists():
        return False, (f"{out} holds a run stopped before its first checkpoint ({CHECKPOINT}): "
                       f"starting it again from scratch")
    if resume:
        raise HwnasError(f"--resume: {out / CHECKPOINT} does not exist (nothing to resume)")
    return False, None


def _check_resume_config(stored: TrainConfig, given: TrainConfig, out: Path) -> None:
    a, b = stored.to_dict(), given.to_dict()
    for key in a:
        if key not in MUTABLE_ON_RESUME and key != "options" and a[key] != b[key]:
            flag = key.replace("_", "-")
            raise HwnasError(f"run {out} was trained with {flag}={a[key]!r}; cannot resume it with "
                             f"{flag}={b[key]!r} (start a new --out instead)")
    cls = strategy_class(stored.strategy)
    oa = _options_dict(stored)
    ob = _options_dict(given)
    for key in oa:
        if key not in cls.Options.MUTABLE_ON_RESUME and oa[key] != ob[key]:
            raise HwnasError(f"run {out} was trained with strategy option {key}={oa[key]!r}; cannot "
                             f"resume it with {key}={ob[key]!r} (start a new --out instead)")


def _options_dict(config: TrainConfig) -> dict[str, Any]:
    from hwnas.train.strategies import parse_strategy_options

    return parse_strategy_options(config.strategy, config.options).to_dict()


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


# ---- the loop --------------------------------------------------------------------------------
def train_supernet(config: TrainConfig, out: str | Path, *, resume: bool = False,
                   torch_device: str | None = None, costs: Mapping[str, CostFn] | None = None,
                   quiet: bool = False, stop_after_epochs: int | None = None,
                   console: Console | None = None) -> TrainResult:
    """Train a supernet with ``config.strategy`` into the run folder ``out``.

    ``resume`` continues ``out/last.pt`` (``config`` must match the stored one except for
    :data:`MUTABLE_ON_RESUME` and the strategy's resumable options). ``torch_device`` is ``cpu`` /
    ``cuda`` (default: CUDA when available). ``costs`` adds or replaces named architecture costs
    (``{"latency": fn}``, ``fn(genes_matrix) -> array``) for cost-constrained strategies; by default
    ``macs`` comes from the cost model and ``latency`` from the table of ``config.device`` /
    ``config.runtime``. ``stop_after_epochs`` ends this invocation cleanly after that many epochs
    (time-sliced jobs; continue with ``resume``).
    Raises :class:`TrainingInterrupted` after checkpointing on SIGINT / SIGTERM.
    """
    out = Path(out)
    t_start = time.perf_counter()
    console = console or Console(stderr=True)
    info = D.init_distributed(torch_device)
    try:
        if out.exists() and not out.is_dir():
            raise HwnasError(f"--out {out} exists and is not a folder")
        # rank 0 holds the run folder's lock: a second run into it is refused, metrics never interleave
        with folder_lock(out) if info.is_main else contextlib.nullcontext():
            resume, restart = _check_run_dir(out, resume)
            if restart and info.is_main:
                (out / METRICS).unlink(missing_ok=True)  # lines of the killed attempt
                if not quiet:
                    note(restart, console, "restart")
            D.barrier(info)  # every rank has checked the folder before rank 0 writes into it
            return _train(config, out, resume, info, dict(costs or {}), quiet, stop_after_epochs,
                          console, t_start)
    finally:
        D.shutdown_distributed(info)


def _fit_batch(config: TrainConfig, train_size: int, world: int, data_name: str,
               from_recipe: list[str]) -> tuple[TrainConfig, str | None]:
    """Refuse an explicit batch above a quarter of the training split; reduce a default one."""
    limit = int(MAX_BATCH_FRACTION * train_size) // world
    batch = int(config.batch_size or 1)
    if batch <= limit:
        return config, None
    if "batch_size" not in from_recipe:
        raise HwnasError(f"--batch-size {batch} x {world} process(es) is more than a quarter of the "
                         f"training split of {data_name} ({train_size} images): at most {max(limit, 0)} "
                         f"per process, so that an epoch has at least 4 steps")
    if limit < 1:
        raise HwnasError(f"the training split of {data_name} ({train_size} images) is too small for "
                         f"{world} process(es): fewer than 4 images per process")
    reduced = 1 << (limit.bit_length() - 1)  # the largest power of two within the limit
    msg = (f"batch size {batch} of recipe {config.recipe.name!r} is more than a quarter of the training "
           f"split of {data_name} ({train_size} images): using {reduced} (pass --batch-size to choose)")
    return config.replace(batch_size=reduced), msg


def _train(config: TrainConfig, out: Path, resume: bool, info: D.DistInfo, costs: dict[str, CostFn],
           quiet: bool, stop_after_epochs: int | None, console: Console, t_start: float) -> TrainResult:
    dev = info.device
    if config.amp and dev.type != "cuda":
        raise HwnasError("--amp needs a CUDA device (float16 autocast + GradScaler); "
                         "on CPU train without --amp")
    config, recipe_record = config.resolve()
    ckpt = None
    if resume:
        ckpt = load_checkpoint(out / CHECKPOINT, map_location="cpu")
        stored = train_config_of(ckpt, out / CHECKPOINT)
        if "strategy_state" not in ckpt:
            raise HwnasError(f"checkpoint {out / CHECKPOINT} was written before training strategies "
                             f"became plug-ins: it loads for eval, search and export but cannot be "
                             f"resumed; start a new --out")
        _check_resume_config(stored, config, out)
        if stored.batch_size != config.batch_size:  # a recipe batch reduced to fit the data
            config = config.replace(batch_size=stored.batch_size)

    # data and space (the dataset decides the number of classes)
    res_space = create_space(config.space, width=config.width, resolution=config.resolution, act=config.act)
    if config.download and info.distributed and not info.is_main:
        D.barrier(info)  # rank 0 downloads first
    data = data_for(config, res_space.resolution, res_space.in_channels)
    if config.download and info.distributed and info.is_main:
        D.barrier(info)
    space = space_for(config, data.num_classes)
    if ckpt is not None and ckpt["space"] != space.config():
        raise HwnasError(f"checkpoint {out / CHECKPOINT} is for space {ckpt['space']}, "
                         f"not {space.config()}")
    config, batch_note = _fit_batch(config, len(data.train), info.world, data.name,
                                    recipe_record["from_recipe"])
    per_epoch = count_steps(len(data.train), config.batch_size, info.world)
    if config.steps_per_epoch is not None:
        per_epoch = min(per_epoch, config.steps_per_epoch)
    total_steps = config.epochs * per_epoch
    lr = config.base_lr(info.world)
    lr_warmup = int(round(config.lr_warmup_epochs * per_epoch))

    # model, strategy, optimizers, schedules
    torch.manual_seed(config.seed)
    provider = strategy_class(config.strategy).weight_sharing(
        parse_strategy_options(config.strategy, config.options), config.sharing)
    net = build_supernet(space, provider).to(dev)
    optimizer = build_optimizer(net, config, lr)
    scheduler = build_scheduler(optimizer, total_steps, lr_warmup)
    use_amp = config.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = build_criterion(config)
    run = RunContext(space=space, supernet=net, data=data, info=info, seed=config.seed,
                     epochs=config.epochs, steps_per_epoch=per_epoch, batch_size=config.batch_size,
                     use_amp=use_amp, recipe_pool_size=config.recipe.pool_size,
                     costs=CostFns(space, device=config.device, runtime=config.runtime,
                                   tables_dir=config.tables_dir, extra=costs))
    strategy = create_strategy(config.strategy, config.options, run)
    train_model = TrainModel(net, strategy).to(dev)
    extra_opts = strategy.optimizers(train_model.extra, total_steps)

    epoch, batch_in_epoch, step = 0, 0, 0
    history: list[dict[str, Any]] = []
    # training-loss sum and count of the epoch an interrupted run stopped in, so that its logged
    # epoch loss covers the whole epoch and not only the steps after the resume
    partial_loss: tuple[float, int] = (0.0, 0)
    log = _MetricsLog(out / METRICS, info.is_main)
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        train_model.extra.load_state_dict(ckpt["strategy_modules"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        for (o, sch), st in zip(extra_opts, ckpt["strategy_optimizers"]):
            o.load_state_dict(st["optimizer"])
            if sch is not None:
                sch.load_state_dict(st["scheduler"])
        if ckpt["scaler"] and use_amp:  # empty when the run was saved without AMP
            scaler.load_state_dict(ckpt["scaler"])
        strategy.load_state_dict(ckpt["strategy_state"])
        restore_rng(ckpt["rng"], dev)
        epoch, batch_in_epoch, step = int(ckpt["epoch"]), int(ckpt["batch_in_epoch"]), int(ckpt["step"])
        history = list(ckpt.get("metrics", []))
        if batch_in_epoch and info.is_main:  # the interrupted epoch's loss so far (all ranks summed)
            partial_loss = (float(ckpt.get("epoch_loss_sum", 0.0)), int(ckpt.get("epoch_loss_n", 0)))
        for g in optimizer.param_groups:  # a changed --epochs changes the schedule length only
            g.setdefault("initial_lr", lr)
        log.truncate_after(step)
        log.write({"kind": "resume", "epoch": epoch, "step": step, "time": time.time()})
    del ckpt

    notes = ([batch_note] if batch_note else []) + strategy.notes()
    recipe_line = (f"recipe {recipe_record['recipe']['name']!r}: "
                   + (", ".join(f"{k} from it" for k in recipe_record["from_recipe"]) or "every setting given"))
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / CONFIG, {
            "train": config.to_dict(), "recipe": recipe_record, "space": space.config(),
            "data": data.describe(), "world_size": info.world, "torch_device": str(dev), "lr": lr,
            "lr_warmup_steps": lr_warmup, "steps_per_epoch": per_epoch, "total_steps": total_steps,
            "strategy": {"name": strategy.name, **strategy.describe()}, "notes": notes,
            "versions": version_stamp()})

    model: nn.Module = train_model
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(
            train_model, device_ids=[dev.index] if dev.type == "cuda" else None, find_unused_parameters=True)

    def save(final: bool = False) -> None:
        if not info.is_main:
            return
        extra = {
            "train_config": config.to_dict(), "strategy": config.strategy, "sharing": net.sharing,
            "sharing_config": net.provider.config(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "strategy_modules": train_model.extra.state_dict(),
            "strategy_optimizers": [{"optimizer": o.state_dict(),
                                     "scheduler": None if sch is None else sch.state_dict()}
                                    for o, sch in extra_opts],
            "scaler": scaler.state_dict(), "strategy_state": strategy.state_dict(), "rng": capture_rng(dev),
            "epoch": epoch, "batch_in_epoch": batch_in_epoch, "step": step, "metrics": history,
            "epoch_loss_sum": partial_loss[0], "epoch_loss_n": partial_loss[1],
            "data": data.describe(), "world_size": info.world, "finished": final,
            # what an exported app model needs: labels.txt and the input normalization
            "class_names": list(data.labels()), "mean": list(data.mean), "std": list(data.std),
        }
        save_checkpoint(out / CHECKPOINT, kind="supernet", space=space, model_state=net.state_dict(),
                        extra=extra)
        for name, content in strategy.artifacts().items():
            if "entries" in content:  # one entry per line (candidate pools)
                write_pool_json(out / name, content)
            else:
                atomic_write_json(out / name, content)

    show_bar = not quiet and info.is_main  # a bar on a terminal, plain lines in a log (hwnas.ui)
    say = (lambda msg: console.print(msg, highlight=False, soft_wrap=True)) if (info.is_main and not quiet) else (lambda msg: None)
    if info.is_main:
        say(f"training {space.name} supernet ({config.strategy}, {config.sharing} weights) on {data.name}: {per_epoch} steps/epoch x "
            f"{config.epochs} epochs, batch {config.batch_size} x {info.world}, lr {lr:.4g}"
            + (f" (linear warm-up {lr_warmup} steps)" if lr_warmup else "")
            + f", device {dev}" + (f", resuming at epoch {epoch} step {step}" if resume else ""))
        say(recipe_line)
        for note in notes:
            say(note)

    epochs_this_run = 0
    last_loss: float | None = None
    stopped_early = strategy.should_stop
    stop_reason = strategy.stop_reason
    train_model.train()
    from hwnas.ui import progress as progress_lines

    with _SignalGuard() as guard, progress_lines(console, fields={"loss": "loss {}", "ips": "{} img/s"},
                                                 enabled=show_bar) as progress:
        task = progress.add_task("train", total=total_steps, completed=step, loss="-", ips="-")
        while epoch < config.epochs and not stopped_early:
            if stop_after_epochs is not None and epochs_this_run >= stop_after_epochs:
                break
            loader = train_loader(data.train, batch_size=config.batch_size, seed=config.seed, epoch=epoch,
                                  rank=info.rank, world=info.world, workers=config.workers,
                                  skip_batches=batch_in_epoch, pin_memory=dev.type == "cuda")
            t_epoch = t_log = time.perf_counter()
            (ep_loss, ep_n), log_loss, log_n = partial_loss if batch_in_epoch else (0.0, 0), 0.0, 0
            partial_loss = (0.0, 0)
            ep_start_batch = batch_in_epoch
            progress.update(task, description=f"epoch {epoch + 1}/{config.epochs}")
            for x, y in loader:
                if batch_in_epoch >= per_epoch:
                    break
                x = x.to(dev, non_blocking=True)
                y = y.to(dev, non_blocking=True)
                loss_val, terms = _train_step(strategy, model, step, x, y, criterion, optimizer,
                                              extra_opts, scaler, dev, use_amp)
                scheduler.step()
                for _, sch in extra_opts:
                    if sch is not None:
                        sch.step()
                step += 1
                batch_in_epoch += 1
                ep_loss, ep_n, log_loss, log_n = ep_loss + loss_val, ep_n + 1, log_loss + loss_val, log_n + 1
                last_loss = loss_val
                if step % config.log_every == 0:
                    now = time.perf_counter()
                    ips = log_n * config.batch_size * info.world / max(now - t_log, 1e-9)
                    log.write({"kind": "step", "epoch": epoch, "step": step, "loss": log_loss / log_n,
                               "lr": optimizer.param_groups[0]["lr"], "images_per_s": round(ips, 1),
                               **terms, **strategy.stats()})
                    t_log, log_loss, log_n = now, 0.0, 0
                if show_bar:
                    ips_epoch = ((batch_in_epoch - ep_start_batch) * config.batch_size * info.world
                                 / max(time.perf_counter() - t_epoch, 1e-9))
                    progress.update(task, advance=1, loss=f"{loss_val:.3f}", ips=f"{ips_epoch:.0f}")
                if D.any_rank(info, guard.signum is not None):
                    signum = guard.signum or signal.SIGTERM
                    partial_loss = (ep_loss, ep_n)
                    if info.distributed:
                        t = D.all_reduce_sum(info, torch.tensor([ep_loss, float(ep_n)],
                                                                dtype=torch.float64, device=dev))
                        partial_loss = (float(t[0]), int(t[1]))
                    save()
                    D.barrier(info)
                    log.write({"kind": "stop", "epoch": epoch, "step": step,
                               "signal": signal.Signals(signum).name})
                    raise TrainingInterrupted(signum, out / CHECKPOINT)
            seconds = time.perf_counter() - t_epoch
            epoch_stats = strategy.end_epoch(epoch)
            if info.distributed:  # mean training loss over all ranks
                t = D.all_reduce_sum(info, torch.tensor([ep_loss, float(ep_n)], dtype=torch.float64,
                                                        device=dev))
                ep_loss, ep_n = float(t[0]), int(t[1])
            summary = {"kind": "epoch", "epoch": epoch, "step": step,
                       "loss": ep_loss / ep_n if ep_n else None, "lr": optimizer.param_groups[0]["lr"],
                       "images_per_s": round((batch_in_epoch - ep_start_batch) * config.batch_size
                                             * info.world / max(seconds, 1e-9), 1),
                       "seconds": round(seconds, 2), **strategy.stats(), **epoch_stats}
            history.append(summary)
            log.write(summary)
            say(f"epoch {epoch + 1}/{config.epochs}  step {step}  loss {summary['loss'] or float('nan'):.4f}  "
                f"lr {summary['lr']:.4g}  {summary['images_per_s']:.0f} img/s"
                + "".join(f"  {k} {v}" for k, v in {**strategy.stats(), **epoch_stats}.items()))
            epoch += 1
            batch_in_epoch = 0
            epochs_this_run += 1
            if strategy.should_stop:
                stopped_early, stop_reason = True, strategy.stop_reason
                log.write({"kind": "stop", "epoch": epoch - 1, "step": step, "reason": stop_reason})
                say(f"early stop: {stop_reason}")
            save(final=epoch >= config.epochs or stopped_early)

    # every rank reports a digest of its weights; identical digests prove the ranks agree
    D.broadcast_buffers(info, train_model)
    digests = D.gather_objects(info, D.state_digest(_weights(train_model)))
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


def _weights(train_model: TrainModel) -> dict[str, torch.Tensor]:
    """The supernet's state plus the strategy's modules (``strategy.NAME``; none for built-ins)."""
    return {**train_model.supernet.state_dict(),
            **{f"strategy.{k}": v for k, v in train_model.extra.state_dict().items()}}


def _train_step(strategy: Strategy, model: nn.Module, step: int, x: torch.Tensor, y: torch.Tensor,
                criterion: nn.Module, optimizer: torch.optim.Optimizer,
                extra_opts: list[tuple[torch.optim.Optimizer, Any]], scaler: torch.amp.GradScaler,
                dev: torch.device, use_amp: bool) -> tuple[float, dict[str, float]]:
    """One step: the strategy's paths in one forward, its loss, ONE backward, every optimizer."""
    runs = strategy.paths(step)
    optimizer.zero_grad(set_to_none=True)
    for o, _ in extra_opts:
        o.zero_grad(set_to_none=True)
    with autocast(dev, use_amp):
        outputs = model(x, runs)
        result = strategy.loss(StepBatch(step=step, x=x, y=y, runs=list(runs), outputs=list(outputs),
                                         criterion=criterion))
    scaler.scale(result.total).backward()
    scaler.step(optimizer)
    for o, _ in extra_opts:
        scaler.step(o)
    scaler.update()
    return float(result.total.detach()), dict(result.terms)
