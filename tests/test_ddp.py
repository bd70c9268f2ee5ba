"""DistributedDataParallel on CPU (gloo): two torchrun processes train a multi-path step (the largest
path plus a distilled student, one forward and one backward, and the strategy's own module) and end
with bit-identical weights; rank 0 alone writes the run folder; untrained candidates stay untouched."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hwnas.checkpoint import load_checkpoint
from hwnas.spaces import create_space
from hwnas.supernet import build_supernet
from hwnas.train.distributed import state_digest
from hwnas.train.strategies import RunContext, create_strategy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import plugin_strategies  # noqa: E402,F401  (registers test-distill)


@pytest.mark.slow
def test_two_gloo_ranks_train_a_multi_path_step_to_identical_weights(tmp_path):
    out = tmp_path / "ddp"
    args = ["--space", "mbv2", "--width", "0.25", "--resolution", "16", "--batch-size", "16",
            "--lr", "0.05", "--workers", "0", "--steps-per-epoch", "3", "--epochs", "2",
            "--log-every", "1", "--torch-device", "cpu", "--seed", "2", "-q",
            "--strategy", "test-distill", "--opt", "students=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(REPO / "tests" / "plugin_main.py"), "train", "--out", str(out), *args],
        env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final = lines[-1]
    assert final["kind"] == "final" and len(final["rank_digests"]) == 2
    assert final["rank_digests"][0] == final["rank_digests"][1]  # both ranks hold the same weights
    ckpt = load_checkpoint(out / "last.pt")
    mine = {**ckpt["model"], **{f"strategy.{k}": v for k, v in ckpt["strategy_modules"].items()}}
    assert state_digest(mine) == final["weights_digest"]  # ... and rank 0 saved them
    assert float(ckpt["strategy_modules"]["temperature.raw"]) != 0.0  # the strategy's module trained
    assert ckpt["world_size"] == 2 and ckpt["step"] == 6
    steps = [r for r in lines if r["kind"] == "step"]
    assert len(steps) == 6 and all(r["kd"] > 0 for r in steps)  # two paths in every step
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert sum(1 for r in lines if r["kind"] == "epoch") == 2  # rank 0 logs alone
    assert not list(out.glob(".*.tmp"))

    # the paths every rank trained are the seeded strategy's: exactly their parameters moved
    space = create_space("mbv2", width=0.25, resolution=16, num_classes=10)
    torch.manual_seed(2)
    net0 = build_supernet(space)
    init = net0.state_dict()
    strategy = create_strategy("test-distill", {"students": 1}, RunContext.for_sampling(space, seed=2))
    name_of = {id(p): n for n, p in net0.named_parameters()}
    used = {name_of[id(p)] for step in range(6) for run in strategy.paths(step)
            for p in net0.path_parameters(run.genes)}
    changed = {n for n in name_of.values() if not torch.equal(init[n], ckpt["model"][n])}
    assert changed == used and len(used) < len(name_of)
