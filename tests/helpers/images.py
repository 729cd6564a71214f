"""A tiny two-class ImageFolder for the training and launcher tests."""
from pathlib import Path

import numpy as np
from PIL import Image


def write_image_folder(root: Path, per_class: int = 24, size: int = 40, seed: int = 0) -> Path:
    """train/ and validation/ with two classes: dark noisy images vs bright noisy images."""
    rng = np.random.default_rng(seed)
    for split in ('train', 'validation'):
        for label, low in (('dark', 0), ('bright', 190)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(low, low + 65, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f'{i}.png')
    return root
