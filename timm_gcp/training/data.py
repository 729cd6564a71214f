"""Batches for a model pair: Fashion-MNIST held in memory, or any dataset timm's `create_dataset` reads.

Both give normalized training batches in an order drawn from a generator (so a seed repeats a run)
and test batches, optionally corrupted: a corruption acts on the images in [0, 1] at the data's own
resolution, before resizing and normalization, as ImageNet-C corrupts the 224-px crops.
"""
from typing import Callable, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F

from .fashion_mnist import CLASSES, IN_CHANS

__all__ = ['FashionMNISTData', 'TimmDatasetData']

Corruption = Callable[[torch.Tensor], torch.Tensor]  # images in [0, 1], N x C x H x W -> the same
Batch = Tuple[torch.Tensor, torch.Tensor]

FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530  # of the training images


class FashionMNISTData:
    """Random subsets of the Fashion-MNIST splits (uint8 tensors), upsampled to `img_size`, mirrored at random."""

    num_classes = len(CLASSES)
    in_chans = IN_CHANS

    def __init__(self, train: Tuple[torch.Tensor, torch.Tensor], test: Tuple[torch.Tensor, torch.Tensor],
                 train_size: int, test_size: int, img_size: int, batch_size: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        train_idx = torch.randperm(len(train[1]), generator=generator)[:train_size]
        test_idx = torch.randperm(len(test[1]), generator=generator)[:test_size]
        self.train_images, self.train_labels = train[0][train_idx], train[1][train_idx]
        self.test_images, self.test_labels = test[0][test_idx], test[1][test_idx]
        self.img_size, self.batch_size = img_size, batch_size
        self.steps_per_epoch = -(-len(self.train_labels) // batch_size)

    def describe(self) -> str:
        return (f'{len(self.train_labels)} training and {len(self.test_labels)} test images at {self.img_size} px, '
                f'batch {self.batch_size}')

    def _batch(self, images: torch.Tensor, flip: Optional[torch.Tensor],
               corruption: Optional[Corruption]) -> torch.Tensor:
        x = images.unsqueeze(1).float().div_(255)
        if flip is not None:
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if corruption is not None:
            x = corruption(x)
        x = F.interpolate(x, size=(self.img_size, self.img_size), mode='bilinear', align_corners=False)
        return ((x - FASHION_MNIST_MEAN) / FASHION_MNIST_STD).contiguous(memory_format=torch.channels_last)

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch in an order drawn from `generator`, half the images (drawn too) mirrored."""
        order = torch.randperm(len(self.train_labels), generator=generator)
        flip = torch.rand(len(self.train_labels), generator=generator) < 0.5
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self._batch(self.train_images[idx], flip[idx], None), self.train_labels[idx]

    def test_batches(self, corruption: Optional[Corruption] = None) -> Iterator[Batch]:
        """The test subset in order, optionally corrupted."""
        for start in range(0, len(self.test_labels), 256):
            yield (self._batch(self.test_images[start:start + 256], None, corruption),
                   self.test_labels[start:start + 256])


class TimmDatasetData:
    """A dataset from `timm.data.create_dataset` (an ImageFolder, `torch/...`, `hfds/...`), random subsets of it.

    Training images get a random resized crop and mirror, test images a resize and centre crop, both to
    `img_size`; normalization uses timm's ImageNet mean and std.
    """

    in_chans = 3

    def __init__(self, name: str, root: str, train_split: str, test_split: str, train_size: Optional[int],
                 test_size: Optional[int], img_size: int, batch_size: int, seed: int, workers: int = 2) -> None:
        from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_dataset
        from torchvision import transforms

        train_tf = transforms.Compose([transforms.RandomResizedCrop(img_size), transforms.RandomHorizontalFlip(),
                                       transforms.ToTensor()])
        test_tf = transforms.Compose([transforms.Resize(round(img_size / 0.875)), transforms.CenterCrop(img_size),
                                      transforms.ToTensor()])
        self.train_set = create_dataset(name, root=root, split=train_split, is_training=True, transform=train_tf)
        self.test_set = create_dataset(name, root=root, split=test_split, transform=test_tf)
        generator = torch.Generator().manual_seed(seed)
        for attr, size in (('train_set', train_size), ('test_set', test_size)):
            dataset = getattr(self, attr)
            if size is not None and size < len(dataset):
                idx = torch.randperm(len(dataset), generator=generator)[:size].tolist()
                setattr(self, attr, torch.utils.data.Subset(dataset, idx))
        self.num_classes = _class_count(self.train_set)
        self.mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
        self.img_size, self.batch_size, self.workers = img_size, batch_size, workers
        self.steps_per_epoch = -(-len(self.train_set) // batch_size)

    def describe(self) -> str:
        return (f'{len(self.train_set)} training and {len(self.test_set)} test images at {self.img_size} px, '
                f'batch {self.batch_size}')

    def _loader(self, dataset, shuffle: bool, generator: Optional[torch.Generator]) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, generator=generator,
                                           num_workers=self.workers)

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        for x, y in self._loader(self.train_set, True, generator):
            yield (x - self.mean) / self.std, y

    def test_batches(self, corruption: Optional[Corruption] = None) -> Iterator[Batch]:
        for x, y in self._loader(self.test_set, False, None):
            if corruption is not None:
                x = corruption(x)
            yield (x - self.mean) / self.std, y


def _class_count(dataset) -> int:
    """Classes of a timm dataset (its reader's class map), unwrapping a Subset."""
    base = dataset.dataset if isinstance(dataset, torch.utils.data.Subset) else dataset
    reader = getattr(base, 'reader', None)
    class_to_idx = getattr(reader, 'class_to_idx', None) or getattr(base, 'class_to_idx', None)
    if class_to_idx:
        return len(class_to_idx)
    classes = getattr(base, 'classes', None) or getattr(getattr(base, 'reader', None), 'classes', None)
    if classes:
        return len(classes)
    raise ValueError('cannot tell the class count of the dataset: its reader lists no classes')
