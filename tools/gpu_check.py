"""The python parts of tools/gpu_check.sh (run that script, not this file, on a CUDA machine).

    python tools/gpu_check.py steps      --out DIR [--cpu-dry-run]   # AMP training steps per strategy
    torchrun --standalone --nproc_per_node 1 tools/gpu_check.py ddp --out DIR [--cpu-dry-run]
    python tools/gpu_check.py throughput [--cpu-dry-run]             # supernet vs static step, 224 px

Without ``--cpu-dry-run`` every part insists on CUDA and fails loudly without it (exit 2);
with it, the same code runs on the CPU at a tiny size, without AMP and with gloo instead of NCCL,
so the script itself can be tested on machines without a GPU. Each part prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

STRATEGIES = ("uniform", "constrained", "greedy")
SHARINGS = ("independent", "elastic")


def _device(dry: bool) -> torch.device:
    if dry:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        print("gpu_check: torch.cuda.is_available() is False: this check needs a CUDA GPU "
              "(use --cpu-dry-run to test the script itself)", file=sys.stderr)
        raise SystemExit(2)
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _size(dry: bool) -> dict:
    # GPU: the papers' input size and width; CPU dry run: tiny
    return {"width": 0.25, "resolution": 32} if dry else {"width": 1.0, "resolution": 224}


def _config(strategy: str, sharing: str, dry: bool, **extra):
    from hwnas.cost import CostModel
    from hwnas.spaces import create_space
    from hwnas.train.config import TrainConfig

    size = _size(dry)
    seam = "options" in TrainConfig.__dataclass_fields__  # strategies own their options
    kw: dict = {}
    if strategy == "constrained" and not seam:  # the middle third of the space's MACs range
        s = create_space("mbv2", num_classes=10, **size)
        lo, hi = CostModel(s)(np.array([s.smallest(), s.largest()]))["macs"]
        kw["macs_range"] = (float(lo + (hi - lo) / 3), float(lo + 2 * (hi - lo) / 3))
    if strategy == "greedy":
        greedy = dict(m=4, k=2, pool_size=4, score_batch=32, warmup_steps=1, early_stop=False)
        kw.update({"options": greedy} if seam else {f"greedy_{k}" if k in ("m", "k") else k: v
                                                     for k, v in greedy.items()})
    return TrainConfig(space="mbv2", data="fake", strategy=strategy, sharing=sharing,
                       batch_size=8 if dry else 64, lr=0.05, epochs=1, steps_per_epoch=3,
                       workers=0 if dry else 2, amp=not dry, log_every=1, **size, **kw, **extra)


def _train(config, out: Path, dev: torch.device):
    import inspect

    from hwnas.train.loop import train_supernet

    key = "torch_device" if "torch_device" in inspect.signature(train_supernet).parameters else "device"
    return train_supernet(config, out, quiet=True, **{key: dev.type})


def steps(out: Path, dry: bool) -> dict:
    """One short training run (3 steps, AMP on CUDA) per strategy and weight sharing."""
    dev = _device(dry)
    results = {}
    for strategy in STRATEGIES:
        for sharing in SHARINGS:
            t0 = time.perf_counter()
            r = _train(_config(strategy, sharing, dry), out / f"{strategy}-{sharing}", dev)
            _sync(dev)
            ok = r.steps >= 1 and r.final_loss is not None and math.isfinite(r.final_loss)
            results[f"{strategy}-{sharing}"] = {"steps": r.steps, "loss": r.final_loss, "ok": ok,
                                                "seconds": round(time.perf_counter() - t0, 2)}
            if not ok:
                raise SystemExit(f"gpu_check: {strategy}/{sharing} did not train: {results}")
    return {"part": "steps", "device": str(dev), "amp": not dry, "runs": results}


def ddp(out: Path, dry: bool) -> dict:
    """Under torchrun: NCCL process group, DistributedDataParallel supernet steps on several paths
    (find_unused_parameters), and an all-reduce checked against its expected value."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from hwnas.spaces import create_space
    from hwnas.supernet import build_supernet

    if "LOCAL_RANK" not in os.environ:
        raise SystemExit("gpu_check ddp: run under torchrun (torchrun --standalone --nproc_per_node 1 ...)")
    dev = _device(dry)
    backend = "gloo" if dry else "nccl"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend)
    try:
        size = _size(dry)
        space = create_space("mbv2", num_classes=10, **size)
        net = build_supernet(space, "elastic").to(dev).train()
        model = DDP(net, device_ids=[dev.index] if dev.type == "cuda" else None, find_unused_parameters=True)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        scaler = torch.amp.GradScaler(dev.type, enabled=not dry)
        rng = np.random.default_rng(0)
        b = 8 if dry else 32
        x = torch.randn(b, 3, size["resolution"], size["resolution"], device=dev)
        y = torch.randint(0, 10, (b,), device=dev)
        losses = []
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=torch.float16, enabled=not dry):
                loss = torch.nn.functional.cross_entropy(model(x, space.sample(rng)), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss.detach()))
        t = torch.full((4,), float(dist.get_rank() + 1), device=dev)
        dist.all_reduce(t)
        expected = dist.get_world_size() * (dist.get_world_size() + 1) / 2
        ok = bool(torch.allclose(t, torch.full_like(t, expected))) and all(map(math.isfinite, losses))
        if not ok:
            raise SystemExit(f"gpu_check ddp: all-reduce or loss wrong: {t.tolist()} {losses}")
        return {"part": "ddp", "backend": dist.get_backend(), "world": dist.get_world_size(),
                "device": str(dev), "losses": losses, "ok": ok}
    finally:
        dist.destroy_process_group()


def _step_time(model, forward, x, y, repeats: int, dev: torch.device, amp: bool) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp)
    times = []
    for i in range(repeats + 2):
        _sync(dev)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(forward(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        _sync(dev)
        if i >= 2:  # two warm-up steps (cuDNN autotuning, allocator)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def throughput(dry: bool, archs: int = 4, repeats: int = 5) -> dict:
    """Images/s of a supernet training step vs the static subnet of the same path (same batch)."""
    from hwnas.spaces import create_space
    from hwnas.supernet import build_supernet, materialize

    dev = _device(dry)
    size = _size(dry)
    b = 4 if dry else 128
    out = {"part": "throughput", "device": str(dev), "batch": b, **size, "amp": not dry}
    for sharing in SHARINGS:
        space = create_space("mbv2", num_classes=1000, **size)
        net = build_supernet(space, sharing).to(dev).train()
        rng = np.random.default_rng(0)
        x = torch.randn(b, 3, size["resolution"], size["resolution"], device=dev)
        y = torch.randint(0, 1000, (b,), device=dev)
        sup, sta = [], []
        for _ in range(archs if not dry else 1):
            g = space.sample(rng)
            sup.append(_step_time(net, lambda t, g=g: net(t, g), x, y, repeats if not dry else 1, dev, not dry))
            sub = materialize(net, g).to(dev).train()
            sta.append(_step_time(sub, sub, x, y, repeats if not dry else 1, dev, not dry))
        out[sharing] = {"supernet_img_s": round(b / statistics.median(sup), 1),
                        "static_img_s": round(b / statistics.median(sta), 1),
                        "ratio_median": round(statistics.median(a / s for a, s in zip(sup, sta)), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=("steps", "ddp", "throughput"))
    ap.add_argument("--out", type=Path, default=Path("gpu_check_runs"))
    ap.add_argument("--cpu-dry-run", action="store_true")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    if a.cpu_dry_run:
        torch.set_num_threads(1)
    result = {"steps": lambda: steps(a.out, a.cpu_dry_run), "ddp": lambda: ddp(a.out, a.cpu_dry_run),
              "throughput": lambda: throughput(a.cpu_dry_run)}[a.part]()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
