"""Top-1 / top-5 of a model on an image folder, with timm's data pipeline and the model's pretrained cfg.

What `timm-gcp release` writes next to the authors' published accuracy: the validation transform
of `timm.data.resolve_data_config` (resize, centre crop, mean / std of the tag), an ImageFolder
whose sorted class folders are the class indices (ImageNet's `val/` laid out by synset), and
timm's `accuracy`, as timm's `validate.py` computes them.
"""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
from timm.data import create_dataset, create_transform, resolve_data_config
from timm.utils import AverageMeter, accuracy
from torch import nn

__all__ = ['Accuracy', 'evaluate']

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accuracy:
    """Accuracies in percent, measured on `images` images of the folder `data`."""
    top1: float
    top5: float
    images: int
    data: str


@torch.no_grad()
def evaluate(
        model: nn.Module,
        data_dir: Union[str, Path],
        batch_size: int = 32,
        workers: int = 2,
        log_interval: int = 50,
) -> Accuracy:
    """Top-1 / top-5 accuracy of `model` on the class folders of `data_dir` (single centre crop)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f'{data_dir}: no such folder (expected class folders of images)')
    config = resolve_data_config(model=model)
    dataset = create_dataset('', root=str(data_dir), split='', is_training=False,
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
