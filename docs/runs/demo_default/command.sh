# the run behind docs/runs/demo_default/history.json, curves.png and stdout.txt (docs/demo.md, "The default demo run"):
# `timm-gcp demo` with its defaults, from the repository root, CPU, one thread (the default)
timm-gcp demo --out-dir docs/runs/demo_default
