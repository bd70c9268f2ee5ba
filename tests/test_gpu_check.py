"""tools/gpu_check.sh fails loudly where it cannot do its job (no CUDA, unknown option, ddp
outside torchrun); its full --cpu-dry-run is run by hand (about 2 minutes on one core)."""

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}


def _run(args, **kw):
    return subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120, **kw)


def test_unknown_option_is_refused():
    p = _run(["bash", "tools/gpu_check.sh", "--fast"])
    assert p.returncode == 2 and "unknown option --fast" in p.stderr and p.stdout == ""


def test_without_cuda_the_check_refuses_and_names_the_way_out():
    if torch.cuda.is_available():  # on a GPU machine the script runs instead: check its python part
        p = _run([sys.executable, "tools/gpu_check.py", "ddp", "--out", "/tmp/x"])
        assert p.returncode != 0 and "torchrun" in (p.stderr + p.stdout)
        return
    p = _run(["bash", "tools/gpu_check.sh"])
    assert p.returncode == 2 and "no CUDA GPU" in p.stderr and "--cpu-dry-run" in p.stderr


def test_ddp_part_insists_on_torchrun():
    env = {k: v for k, v in ENV.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE")}
    p = subprocess.run([sys.executable, "tools/gpu_check.py", "ddp", "--cpu-dry-run"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "run under torchrun" in p.stderr
