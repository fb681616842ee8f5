#!/usr/bin/env bash
# GPU check (issue 19), ready for a machine with an NVIDIA GPU: trains every deep decoder at the `paper` preset
# (the reference implementation's sizes) for a fixed number of steps, non-causal and causal, with mixed precision,
# and prints windows/s (including validation, one epoch's worth) and peak GPU memory per run, plus one 2-GPU DDP
# run when two GPUs are visible. Steps, never wall clock; the figures go to BENCHMARKS.md with this command.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR] [STEPS]        # defaults: /tmp/neurovox_gpu_check, 200
#
# Needs: bash scripts/setup.sh done with a CUDA build of torch installed first (see scripts/setup.sh), and
# nvidia-smi. Each run stops after STEPS optimiser steps; the whole check takes a few minutes on one GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/neurovox_gpu_check}
STEPS=${2:-200}
PY=.venv/bin/python
PRECISION=${PRECISION:-bf16-mixed}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch: install a CUDA build of torch (pip install torch==2.13.0 --index-url ...) and check nvidia-smi')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
mkdir -p "$OUT"
[ -f "$OUT/sim/sim01_high_gamma.h5" ] || $PY -m neurovox.cli simulate --out "$OUT/sim" --seed 0 >/dev/null
DATA="$OUT/sim/sim01_high_gamma.h5"
COMMON=(--set decoder.preset=paper --set decoder.max_steps="$STEPS" --set decoder.max_epochs=100000
        --set decoder.patience=100000 --set decoder.precision="$PRECISION" --set decoder.device=cuda --overwrite)
run() {  # name, extra args...
    local name=$1; shift
    $PY -m neurovox.cli train decoder --data "$DATA" --out "$OUT/$name" "${COMMON[@]}" "$@" > "$OUT/$name.log" 2>&1 \
        || { echo "$name: FAILED (log: $OUT/$name.log)"; return 0; }
    $PY - "$OUT/$name/DONE" "$name" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:<22} {d['n_params'] / 1e6:6.2f} M params  {d['steps']:5d} steps x {d['windows_per_step']} windows  "
      f"{d['steps'] * d['windows_per_step'] / d['fit_seconds']:8.1f} windows/s  peak GPU memory {d['peak_gpu_memory_gb']} GiB")
PYEOF
}
echo "decoders at the paper preset, $STEPS steps, precision $PRECISION:"
for model in resnet swin lstm; do
    run "$model" --model "$model"
    run "$model-causal" --model "$model" --causal
done
if [ "$($PY -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
    run "resnet-ddp2" --model resnet --set decoder.devices=2
fi
