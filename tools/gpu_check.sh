#!/usr/bin/env bash
# GPU path check (one CUDA GPU, under 5 minutes): the CUDA / AMP / NCCL paths of hwnas.
#
#   tools/gpu_check.sh                 # on a CUDA machine; exit 2 without CUDA
#   tools/gpu_check.sh --cpu-dry-run   # the same steps on the CPU, tiny sizes, no AMP, gloo
#
# 1. a short AMP training run (3 steps) per strategy (uniform, constrained, greedy) x sharing
#    (independent, elastic) on the fake dataset at 224 px, width 1.0;
# 2. torchrun --nproc_per_node 1: NCCL process group, DDP supernet steps with AMP, an all-reduce;
# 3. throughput: supernet training step vs the static subnet of the same path, 224 px, batch 128;
# 4. export (ONNX, with the parity check) of a subnet from the GPU-trained checkpoint.
# Every part prints one JSON line; the figures go in docs/ranking.md ("GPU path").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DRY=()
if [[ "${1:-}" == "--cpu-dry-run" ]]; then
  DRY=(--cpu-dry-run)
elif [[ -n "${1:-}" ]]; then
  echo "gpu_check: unknown option ${1} (allowed: --cpu-dry-run)" >&2
  exit 2
elif ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA GPU (torch.cuda.is_available() is False); run on a CUDA machine or pass --cpu-dry-run" >&2
  exit 2
fi
OUT=${GPU_CHECK_OUT:-$(mktemp -d /tmp/hwnas-gpu-check.XXXXXX)}
mkdir -p "$OUT"
echo "gpu_check: runs in $OUT" >&2
start=$(date +%s)

"$PY" tools/gpu_check.py steps --out "$OUT/steps" "${DRY[@]}"
"$PY" -m torch.distributed.run --standalone --nproc_per_node 1 tools/gpu_check.py ddp --out "$OUT/ddp" "${DRY[@]}"
"$PY" tools/gpu_check.py throughput "${DRY[@]}"
GENES=$("$PY" -c "
from hwnas.spaces import create_space
import json, sys
ck = json.load(open('$OUT/steps/uniform-elastic/config.json'))['space']
s = create_space(**ck)
print(','.join(map(str, s.largest())))")
"$PY" -m hwnas export --checkpoint "$OUT/steps/uniform-elastic/last.pt" --genes "$GENES" \
  --format onnx --out "$OUT/export" >&2
test -s "$OUT/export/model.onnx"
echo "{\"part\": \"export\", \"file\": \"$OUT/export/model.onnx\", \"bytes\": $(stat -c %s "$OUT/export/model.onnx")}"
echo "{\"part\": \"total\", \"seconds\": $(( $(date +%s) - start ))}"
