# the run behind docs/runs/probe/probe.json, probe.png and stdout.txt (docs/probing.md, "Result on Fashion-MNIST"),
# from the repository root, CPU, one thread (the default), Debian's Fashion-MNIST at /usr/share/datasets/fashion-mnist
timm-gcp probe --out-dir docs/runs/probe
