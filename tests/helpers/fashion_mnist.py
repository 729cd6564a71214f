"""A tiny Fashion-MNIST in the real idx file layout, and whether Debian's copy is installed (demo tests)."""
from pathlib import Path

import numpy as np

from timm_gcp.training.fashion_mnist import DEBIAN_DIR, FILES, find_fashion_mnist, write_idx


def write_fashion_mnist(folder: Path, n_train: int = 160, n_test: int = 80, gz: bool = True) -> Path:
    """A tiny stand-in with the real file layout: class k images are bright in a k-dependent band."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (('train', n_train), ('test', n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k:2 * k + 8] = 230
        suffix = '.gz' if gz else ''
        write_idx(str(folder / (FILES[split][0] + suffix)), images)
        write_idx(str(folder / (FILES[split][1] + suffix)), labels)
    return folder


def debian_installed() -> bool:
    """Whether Debian's dataset-fashion-mnist holds all four files (the demo's own lookup)."""
    try:
        return find_fashion_mnist(DEBIAN_DIR) == DEBIAN_DIR
    except ValueError:
        return False
