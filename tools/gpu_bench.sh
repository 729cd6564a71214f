#!/usr/bin/env bash
# The model benchmark on one CUDA GPU at batch 256 with bf16 AMP and channels_last, in four runs:
# eager on the models below; eager with TF32 float32 matrix products (the head's covariance and
# square root run in float32, so the "head error vs float64" column shows what TF32 costs in
# precision); eager at 448 px (batch 128), where the stride-16 last stage gives the head
# N = 784 positions (the fine-grained setting); torch.compile (inductor) on resnet50_isqrt_d256 and
# its baseline, last because compiling takes most of the time. Prints the card and each run's
# tables; each run says on stderr what it does as it goes (a line per model created and warmed up,
# one per timed operation) and is stopped after $BENCH_RUN_TIMEOUT seconds (default 300) with the
# Python stack of where it was; the runs after a stopped or failed one still run, and the script
# then exits 1. The Hub is never asked (HF_HUB_OFFLINE=1: nothing here downloads weights).
# Extra arguments go to every run (after the script's own, so they win: --models, --batch-size,
# --rounds ...); JSON goes to $BENCH_OUT (default: .).
# BENCH_DEVICE=cpu (default cuda) runs the same four runs on the CPU, the second without --tf32
# (a CUDA setting), and BENCH_COMPILE (default inductor) picks the compile backend: the test suite
# runs the script this way (tests/test_benchmark.py), so the first GPU run is not the script's first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
out="${BENCH_OUT:-.}"
device="${BENCH_DEVICE:-cuda}"
limit="${BENCH_RUN_TIMEOUT:-300}"
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
failed=()

# bench NAME ARGS...: one `timm-gcp bench` run, stopped after $limit seconds (SIGINT: Python prints where it was)
bench() {
    local name=$1 rc=0
    shift
    echo "[gpu_bench $(date -u +%H:%M:%S)] run $name (at most $limit s): timm-gcp bench $*" >&2
    timeout --signal=INT --kill-after=30 "$limit" python -m timm_gcp.cli bench "$@" || rc=$?
    if ((rc == 124 || rc == 137)); then
        echo "[gpu_bench $(date -u +%H:%M:%S)] run $name: stopped after $limit s (BENCH_RUN_TIMEOUT)" >&2
    elif ((rc != 0)); then
        echo "[gpu_bench $(date -u +%H:%M:%S)] run $name: failed (exit status $rc)" >&2
    fi
    if ((rc != 0)); then
        failed+=("$name")
    fi
}

bench eager "${common[@]}" --rounds 5 --models "${models[@]}" "$@" --json "$out/gpu_bench_eager.json"
bench eager_tf32 "${common[@]}" --rounds 5 "${tf32[@]}" --models resnet50_isqrt_d256 "$@" \
    --json "$out/gpu_bench_eager_tf32.json"
bench eager_448 "${common[@]}" --rounds 5 --img-size 448 --batch-size 128 --models resnet50_isqrt_d256 "$@" \
    --json "$out/gpu_bench_eager_448.json"
bench compile "${common[@]}" --rounds 3 --compile "${BENCH_COMPILE:-inductor}" \
    --models resnet50_isqrt_d256 "$@" --json "$out/gpu_bench_compile.json"
if ((${#failed[@]})); then
    echo "[gpu_bench] runs that did not finish: ${failed[*]}" >&2
    exit 1
fi
