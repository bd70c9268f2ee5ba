"""DistributedDataParallel on CPU (gloo): two torchrun processes train the same paths and end with
bit-identical weights; rank 0 alone writes the run folder; untrained candidates stay untouched."""

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
from hwnas.train.samplers import SamplerContext, create_sampler

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_gloo_ranks_end_with_identical_weights(tmp_path):
    out = tmp_path / "ddp"
    args = ["--space", "mbv2", "--width", "0.25", "--resolution", "16", "--batch-size", "16",
            "--lr", "0.05", "--workers", "0", "--steps-per-epoch", "3", "--epochs", "2",
            "--log-every", "1", "--device", "cpu", "--seed", "2", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "hwnas", "train", "--out", str(out), *args],
        env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final = lines[-1]
    assert final["kind"] == "final" and len(final["rank_digests"]) == 2
    assert final["rank_digests"][0] == final["rank_digests"][1]  # both ranks hold the same weights
    ckpt = load_checkpoint(out / "last.pt")
    assert state_digest(ckpt["model"]) == final["weights_digest"]  # ... and rank 0 saved them
    assert ckpt["world_size"] == 2 and ckpt["step"] == 6
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert sum(1 for r in lines if r["kind"] == "epoch") == 2  # rank 0 logs alone
    assert not list(out.glob(".*.tmp"))

    # the paths every rank trained are the seeded sampler's: exactly their parameters moved
    space = create_space("mbv2", width=0.25, resolution=16, num_classes=10)
    torch.manual_seed(2)
    net0 = build_supernet(space)
    init = net0.state_dict()
    smp = create_sampler("uniform", space, SamplerContext(seed=2))
    name_of = {id(p): n for n, p in net0.named_parameters()}
    used = {name_of[id(p)] for step in range(6) for p in net0.path_parameters(smp.paths(step)[0])}
    changed = {n for n in name_of.values() if not torch.equal(init[n], ckpt["model"][n])}
    assert changed == used
