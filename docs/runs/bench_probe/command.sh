# the run behind docs/runs/bench_probe/bench.json and stdout.txt (docs/probing.md, "Cost"): random weights, CPU,
# one thread of a shared 2-core machine, from the repository root
timm-gcp bench --models convnext_tiny_isqrt vit_small_patch16_224_isqrt --probe --batch-size 8 --rounds 3 --threads 1 --json docs/runs/bench_probe/bench.json
