#!/usr/bin/env bash
# The model benchmark on one CUDA GPU at batch 256 with bf16 AMP and channels_last, in three runs:
# eager on the default models; eager with TF32 float32 matrix products (the head's covariance and
# square root run in float32, so the "head error vs float64" column shows what TF32 costs in
# precision); torch.compile (inductor) on resnet50_isqrt_d256 and its baseline, last because
# compiling takes most of the time. Prints the card and each run's tables; meant to finish within
# 5 minutes on an H100 or H200. Extra arguments go to every run (after the script's own, so they
# win: --models, --batch-size, --rounds ...); JSON goes to $BENCH_OUT (default: .).
# BENCH_DEVICE=cpu (default cuda) runs the same three runs on the CPU, the second without --tf32
# (a CUDA setting), and BENCH_COMPILE (default inductor) picks the compile backend: the test suite
# runs the script this way (tests/test_benchmark.py), so the first GPU run is not the script's first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${BENCH_OUT:-.}"
device="${BENCH_DEVICE:-cuda}"
mkdir -p "$out"

tf32=()
if [[ "$device" == cuda* ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    tf32=(--tf32)
fi
common=(--device "$device" --amp-dtype bfloat16 --channels-last --batch-size 256 --iters 3)
python -m timm_gcp.cli bench "${common[@]}" --rounds 5 "$@" --json "$out/gpu_bench_eager.json"
python -m timm_gcp.cli bench "${common[@]}" --rounds 5 "${tf32[@]}" --models resnet50_isqrt_d256 "$@" \
    --json "$out/gpu_bench_eager_tf32.json"
python -m timm_gcp.cli bench "${common[@]}" --rounds 3 --compile "${BENCH_COMPILE:-inductor}" \
    --models resnet50_isqrt_d256 "$@" --json "$out/gpu_bench_compile.json"
