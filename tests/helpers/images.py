"""PNG images on disk: a folder of images, and a tiny two-class ImageFolder (launcher and training tests)."""
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image


def write_images(
        folder: Path,
        count: int = 2,
        size: int = 8,
        low: int = 0,
        high: int = 256,
        rng: Optional[np.random.Generator] = None,
) -> Path:
    """`count` RGB PNGs 0.png, 1.png, ... of size x size, pixels uniform in [low, high), in `folder` (created)."""
    rng = np.random.default_rng(0) if rng is None else rng
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(low, high, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f'{i}.png')
    return folder


def write_image_folder(root: Path, per_class: int = 24, size: int = 40, seed: int = 0) -> Path:
    """train/ and validation/ with two classes: dark noisy images vs bright noisy images."""
    rng = np.random.default_rng(seed)
    for split in ('train', 'validation'):
        for label, low in (('dark', 0), ('bright', 190)):
            write_images(root / split / label, per_class, size, low, low + 65, rng)
    return root
