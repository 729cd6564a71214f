"""Top-1 / top-5 of a model on an image folder, with timm's data pipeline and the model's pretrained cfg.

What `timm-gcp release` writes next to the authors' published accuracy: the validation transform
of `timm.data.resolve_data_config` (resize, centre crop, mean / std of the tag), an ImageFolder
whose sorted class folders are the class indices (ImageNet's `val/` laid out by synset), and
timm's `accuracy`, as timm's `validate.py` computes them. `imagenet_class_map` checks that a folder
is ImageNet's validation set before a model is measured against the authors' ImageNet accuracy.
"""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

import torch
from timm.data import ImageNetInfo, create_dataset, create_transform, resolve_data_config
from timm.utils import AverageMeter, accuracy
from torch import nn

__all__ = ['Accuracy', 'evaluate', 'imagenet_class_map']

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accuracy:
    """Accuracies in percent, measured on `images` images of the folder `data`."""
    top1: float
    top5: float
    images: int
    data: str


def imagenet_class_map(data_dir: Union[str, Path]) -> Dict[str, int]:
    """ImageNet-1k's synset -> class index; ValueError unless `data_dir` holds its 1000 class folders, named by synset.

    A folder of other classes would be measured against the wrong labels (and its accuracy blamed on
    the weights), so the message names what is wrong: how many class folders, which are no synsets.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f'{data_dir}: no such folder')
    synsets = ImageNetInfo('imagenet-1k').label_names()
    folders = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
    known = set(synsets)
    others = [f for f in folders if f not in known]
    if others or len(folders) != len(synsets):
        shown = ', '.join(others[:5]) + (f' and {len(others) - 5} more' if len(others) > 5 else '')
        what = f'; not ImageNet synsets: {shown}' if others else ''
        raise ValueError(
            f"{data_dir}: not ImageNet's validation set: {len(folders)} class folder(s) where ImageNet has "
            f"{len(synsets)}, one per synset (n01440764 ...){what}")
    return {s: i for i, s in enumerate(synsets)}


@torch.no_grad()
def evaluate(
        model: nn.Module,
        data_dir: Union[str, Path],
        batch_size: int = 32,
        workers: int = 2,
        log_interval: int = 50,
        class_map: Optional[Dict[str, int]] = None,
) -> Accuracy:
    """Top-1 / top-5 accuracy of `model` on the class folders of `data_dir` (single centre crop).

    `class_map` (folder name -> class index) fixes the labels; without it the sorted class folders are 0, 1, ...
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f'{data_dir}: no such folder (expected class folders of images)')
    config = resolve_data_config(model=model)
    dataset = create_dataset('', root=str(data_dir), split='', is_training=False, class_map=class_map,
                             transform=create_transform(**config, is_training=False))
    if len(dataset) == 0:
        raise ValueError(f'{data_dir}: no images found')
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    model.eval()
    device = next(model.parameters()).device
    top1, top5 = AverageMeter(), AverageMeter()
    for step, (images, targets) in enumerate(loader):
        output = model(images.to(device))
        acc1, acc5 = accuracy(output, targets.to(device), topk=(1, min(5, output.shape[-1])))
        top1.update(acc1.item(), images.shape[0])
        top5.update(acc5.item(), images.shape[0])
        if step % log_interval == 0 or step == len(loader) - 1:
            _logger.info(f'{data_dir.name}: [{step + 1}/{len(loader)}] top-1 {top1.avg:.2f} % top-5 {top5.avg:.2f} %')
    return Accuracy(top1=top1.avg, top5=top5.avg, images=top1.count, data=data_dir.name)
