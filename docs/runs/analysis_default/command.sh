# the run behind docs/runs/analysis_default/analysis.json, analysis.png and stdout.txt (docs/analysis.md, "The default
# run"; README.md): `timm-gcp analyze` with its defaults, from the repository root, CPU, one thread (the default),
# Debian's Fashion-MNIST at /usr/share/datasets/fashion-mnist
timm-gcp analyze --out-dir docs/runs/analysis_default
