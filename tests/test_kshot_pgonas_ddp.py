"""K-shot NAS and PGONAS under DistributedDataParallel (2 gloo ranks on CPU): multi-path steps with
the simplex-net's and the rank pairs' paths in one forward and one backward; both ranks end with
identical weights and rank 0 saved them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hwnas.checkpoint import load_checkpoint
from hwnas.train.distributed import state_digest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("strategy,opts", [
    ("kshot", ["k=2", "warmup_epochs=0", "paths=2"]),
    ("pgonas", ["prior=zen", "zen_batch=4", "schedule=constant", "random_paths=1", "pairs=1"]),
])
def test_two_gloo_ranks_agree(strategy, opts, tmp_path):
    out = tmp_path / strategy
    args = ["--space", "mbv2", "--width", "0.25", "--resolution", "16", "--batch-size", "8",
            "--lr", "0.05", "--workers", "0", "--steps-per-epoch", "1", "--epochs", "1",
            "--log-every", "1", "--torch-device", "cpu", "--seed", "2", "-q", "--strategy", strategy]
    for o in opts:
        args += ["--opt", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "hwnas", "train", "--out", str(out), *args],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final = lines[-1]
    assert final["kind"] == "final" and len(final["rank_digests"]) == 2
    assert final["rank_digests"][0] == final["rank_digests"][1]
    ckpt = load_checkpoint(out / "last.pt")
    assert state_digest(ckpt["model"]) == final["weights_digest"] and ckpt["world_size"] == 2
    steps = [r for r in lines if r["kind"] == "step"]
    # the multi-path part (simplex-net paths / rank pairs) ran under DDP
    assert ("simplex_loss" in steps[0]) if strategy == "kshot" else (steps[0]["rank_lambda"] == 2.0)
