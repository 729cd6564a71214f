# the run behind docs/runs/analysis_demo_size/analysis.json, analysis.png and stdout.txt (docs/demo.md, "One seed
# against three"): the demo's configuration over three seeds, from the repository root, CPU, one thread (the default)
timm-gcp analyze --train-size 6000 --test-size 2000 --epochs 4 --probe-every 188 --ladder-lrs --corruptions \
    --seeds 0 1 2 --out-dir docs/runs/analysis_demo_size
