#!/usr/bin/env bash
# The model benchmark on one CUDA GPU at batch 256 with bf16 AMP and channels_last: eager, then
# torch.compile, then eager with TF32 matrix products for the 256-d head (which the float32 head
# math then uses). Prints the card and each run's tables; within 5 minutes on an H100 or H200.
# Extra arguments go to every run (e.g. --models ...); JSON goes to $BENCH_OUT (default: .).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${BENCH_OUT:-.}"
mkdir -p "$out"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
common=(--device cuda --amp-dtype bfloat16 --channels-last --batch-size 256 --iters 3)
python -m timm_gcp.cli bench "${common[@]}" --rounds 5 "$@" --json "$out/gpu_bench_eager.json"
python -m timm_gcp.cli bench "${common[@]}" --rounds 3 --compile "$@" --json "$out/gpu_bench_compile.json"
python -m timm_gcp.cli bench "${common[@]}" --rounds 5 --tf32 --models resnet50 resnet50_isqrt_d256 "$@" \
    --json "$out/gpu_bench_eager_tf32.json"
