"""Helpers shared by the test modules (plain functions and constants, no tests, no fixtures).

* `images`: PNG images and a two-class ImageFolder (launcher and training tests);
* `layouts`: state dicts and MindSpore `.ckpt` files in the layouts of the authors' checkpoints;
* `weights`: random weights for models whose outputs are compared;
* `fashion_mnist`: a tiny Fashion-MNIST in the real idx file layout (demo tests);
* `gcp_reference`: a GCP head from the papers' equations, for models whose trunk comes from elsewhere;
* `scripts`: a train.py look-alike for the launcher and `timm-gcp launch`;
* `train_runs`: a finished train.py run (args.yaml, a CheckpointSaver checkpoint) and a small ImageFolder;
* `commands`: `timm-gcp` in the test process, failing the test when Ctrl-C escapes it;
* `timm_sources`: timm's code that is not in its wheel (its model test suite, its training scripts).
"""
from pathlib import Path

# the repository root, for the tests that read README.md, model_cards/ and train_scripts/
REPO = Path(__file__).resolve().parents[2]
