#!/usr/bin/env bash
# The model benchmark on one CUDA GPU at batch 256 with bf16 AMP and channels_last, in four runs:
# eager on the models below; eager with TF32 float32 matrix products (the head's covariance and
# square root run in float32, so the "head error vs float64" column shows what TF32 costs in
# precision); eager at 448 px (batch 128), where the stride-16 last stage gives the head
# N = 784 positions (the fine-grained setting); torch.compile (inductor) on resnet50_isqrt_d256 and
# its baseline, last because compiling takes most of the time. Prints the card and each run's
# tables; meant to finish within one 10-minute call on an H100 or H200 (about 5 minutes before the
# 448 px run was added). Extra arguments go to every run (after the script's own, so they win:
# --models, --batch-size, --rounds ...); JSON goes to $BENCH_OUT (default: .).
# BENCH_DEVICE=cpu (default cuda) runs the same three runs on the CPU, the second without --tf32
# (a CUDA setting), and BENCH_COMPILE (default inductor) picks the compile backend: the test suite
# runs the script this way (tests/test_benchmark.py), so the first GPU run is not the script's first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${BENCH_OUT:-.}"
device="${BENCH_DEVICE:-cuda}"
mkdir -p "$out"

# The models of the first run, each timed against its timm baseline (the presets: their backbone with
# timm's own head); append new models here.
models=(resnet50_isqrt resnet50_isqrt_d256 resnet50_dropcov convnext_tiny_isqrt vit_small_patch16_224_dropcov)

tf32=()
if [[ "$device" == cuda* ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    tf32=(--tf32)
fi
common=(--device "$device" --amp-dtype bfloat16 --channels-last --batch-size 256 --iters 3)
python -m timm_gcp.cli bench "${common[@]}" --rounds 5 --models "${models[@]}" "$@" --json "$out/gpu_bench_eager.json"
python -m timm_gcp.cli bench "${common[@]}" --rounds 5 "${tf32[@]}" --models resnet50_isqrt_d256 "$@" \
    --json "$out/gpu_bench_eager_tf32.json"
python -m timm_gcp.cli bench "${common[@]}" --rounds 5 --img-size 448 --batch-size 128 --models resnet50_isqrt_d256 "$@" \
    --json "$out/gpu_bench_eager_448.json"
python -m timm_gcp.cli bench "${common[@]}" --rounds 3 --compile "${BENCH_COMPILE:-inductor}" \
    --models resnet50_isqrt_d256 "$@" --json "$out/gpu_bench_compile.json"
