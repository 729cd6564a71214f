"""Fashion-MNIST (Xiao et al., 2017; MIT) from its idx files, for the demo and tests.

The files come from Debian's `dataset-fashion-mnist` package (`/usr/share/datasets/fashion-mnist`,
installed by tools/setup.sh), from any folder holding them (gzipped or not), or from torchvision's
download when neither is there.
"""
import gzip
import os
from typing import Optional, Tuple

import numpy as np
import torch

__all__ = ['CLASSES', 'DEBIAN_DIR', 'FILES', 'IN_CHANS', 'find_fashion_mnist', 'load_fashion_mnist', 'read_idx',
           'write_idx']

DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'
FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
IN_CHANS = 1  # grayscale images

_UBYTE = 0x08


def read_idx(path: str) -> np.ndarray:
    """An idx file of unsigned bytes (gzipped if the name ends in .gz) as a uint8 array of its shape."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b'\0\0' or data[2] != _UBYTE:
        raise ValueError(f"'{path}' is not an idx file of unsigned bytes (magic {data[:4].hex() or 'missing'})")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype='>u4', count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(f"'{path}' holds {len(data) - offset} bytes of data, its header says {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def write_idx(path: str, array: np.ndarray) -> None:
    """Write a uint8 array as an idx file (gzipped if the name ends in .gz): tiny fixtures for tests."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, array.ndim]) + np.asarray(array.shape, dtype='>u4').tobytes()
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'wb') as f:
        f.write(header + array.tobytes())


def _find_file(folder: str, name: str) -> Optional[str]:
    for candidate in (name, name + '.gz'):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _missing(folder: str) -> list:
    return [name for pair in FILES.values() for name in pair if _find_file(folder, name) is None]


def find_fashion_mnist(data_dir: Optional[str] = None, download_dir: Optional[str] = None) -> str:
    """The folder holding the four Fashion-MNIST idx files.

    `data_dir` if given (ValueError naming the missing files otherwise), else Debian's folder when
    installed, else torchvision's download into `download_dir` (default ~/.cache/timm_gcp).
    """
    if data_dir is not None:
        missing = _missing(data_dir)
        if missing:
            raise ValueError(f"'{data_dir}' lacks the Fashion-MNIST files {', '.join(missing)} (or their .gz)")
        return data_dir
    if not _missing(DEBIAN_DIR):
        return DEBIAN_DIR
    from torchvision.datasets import FashionMNIST

    root = download_dir or os.path.join(os.path.expanduser('~'), '.cache', 'timm_gcp')
    for train in (True, False):
        FashionMNIST(root, train=train, download=True)
    return os.path.join(root, 'FashionMNIST', 'raw')


def load_fashion_mnist(folder: str, split: str = 'train') -> Tuple[torch.Tensor, torch.Tensor]:
    """Images (N x 28 x 28 uint8) and labels (N int64) of the 'train' or 'test' split in `folder`."""
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    image_file, label_file = (_find_file(folder, name) for name in FILES[split])
    if image_file is None or label_file is None:
        raise ValueError(f"'{folder}' lacks the Fashion-MNIST {split} files {', '.join(FILES[split])}")
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f'{split} images {images.shape} and labels {labels.shape} of {folder} do not match')
    if labels.size and labels.max() >= len(CLASSES):
        raise ValueError(f"'{label_file}' has label {labels.max()}, Fashion-MNIST has {len(CLASSES)} classes")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
