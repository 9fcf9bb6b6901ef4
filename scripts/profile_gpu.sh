#!/usr/bin/env bash
# The CUDA sweep for a lent GPU (one H200 here), prepared to finish in under 8 minutes:
#   1. install the project's Python deps into a throwaway venv (torch comes with the machine's CUDA build
#      when present; otherwise pip takes the CUDA wheel);
#   2. run the kernel tests on CUDA (same assertions as on the CPU);
#   3. `planner profile --device cuda` over the cuda grid of DeepSeek-V2-Lite's real widths, in bf16,
#      resumable, into profiles/h200.csv (or $OUT/h200.csv when run through the device tool);
#   4. `planner check-timing` on it.
# Usage: scripts/profile_gpu.sh [OUTFILE]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:+$OUT/}profiles/h200.csv}
[ -n "${OUT:-}" ] && out="$OUT/h200.csv"
export PYTHONUNBUFFERED=1
if ! python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "no CUDA torch here: install one first" >&2; exit 2
fi
python3 -m pip install -q --no-deps -e . 2>/dev/null || true
python3 -m pip install -q numpy simpy 'pydantic>=2.6' pyyaml click rich pytest 2>/dev/null || true
timeout 120 python3 -m pytest -q -x tests/kernels -p no:cacheprovider --device cuda 2>&1 | tail -3 || true
timeout 360 python3 -m planner.cli profile --device cuda --grid cuda --dtype bfloat16 --min-time-s 0.05 \
  --out "$out" --resume
python3 -m planner.cli check-timing "$out"
