#!/usr/bin/env bash
# The CUDA profile for a lent GPU, prepared to finish well inside the device budget:
#   1. install the project's Python deps (torch comes with the machine's CUDA build when present);
#   2. run the kernel tests on CUDA (same assertions as on the CPU);
#   3. `planner profile --device cuda` over the cuda grid of DeepSeek-V2's and DeepSeek-V3's real layer
#      widths in BF16, and of their GEMMs in FP8 where the GPU has FP8 tensor cores (compute capability
#      8.9 or newer), each resumable, into profiles/<gpu>-<model>[-fp8].csv (or under $OUT on the device tool);
#   4. `planner check-timing` on each profile (its header carries the GPU's fingerprint).
# Usage: scripts/profile_gpu.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
outdir=${1:-${OUT:-profiles}}
export PYTHONUNBUFFERED=1
if ! python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "no CUDA torch here: install one first" >&2; exit 2
fi
python3 -m pip install -q --no-deps -e . 2>/dev/null || true
python3 -m pip install -q numpy simpy 'pydantic>=2.6' pyyaml click rich pytest 2>/dev/null || true
gpu=$(python3 -c "import torch; print(torch.cuda.get_device_name().split()[-1].lower())")
fp8=$(python3 -c "import torch; print(int(torch.cuda.get_device_capability() >= (8, 9)))")
timeout 120 python3 -m pytest -q -x tests/kernels -p no:cacheprovider --device cuda 2>&1 | tail -3 || true
for model in deepseek-v2 deepseek-v3; do
  out="$outdir/$gpu-$model.csv"
  timeout 150 python3 -m planner.cli profile --device cuda --model "$model" --grid cuda --dtype bfloat16 \
    --min-time-s 0.05 --out "$out" --resume || true
  python3 -m planner.cli check-timing "$out" || true
  if [ "$fp8" = 1 ]; then
    out8="$outdir/$gpu-$model-fp8.csv"
    timeout 60 python3 -m planner.cli profile --device cuda --model "$model" --ops gemm --grid cuda \
      --dtype float8_e4m3fn --min-time-s 0.05 --out "$out8" --resume || true
    python3 -m planner.cli check-timing "$out8" || true
  fi
done
