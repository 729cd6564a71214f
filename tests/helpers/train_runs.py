"""A finished timm `train.py` run on disk: its args.yaml and a checkpoint written by timm's own `CheckpointSaver`.

args.yaml holds train.py's arguments under train.py's names (`img_size`, `crop_pct`, `interpolation`,
`data_dir`, `train_split`, `model_kwargs` ...), as train.py writes it; `fashion_folder` is a small
three-class ImageFolder for the runs whose class names an export should carry.
"""
import argparse
from pathlib import Path
from typing import Any, Optional

import torch
import yaml
from timm.utils import CheckpointSaver

from .images import write_images

# the class folders of `fashion_folder`, in the order timm's ImageFolder reader labels them (natural sort)
FASHION_CLASSES = ('bag', 'boot', 'shirt')

# train.py's defaults for the arguments a conversion reads (train.py writes every argument into args.yaml)
TRAIN_DEFAULTS = dict(data=None, data_dir=None, dataset='', train_split='train', class_map='', num_classes=None,
                      in_chans=None, img_size=None, input_size=None, crop_pct=None, mean=None, std=None,
                      interpolation='', gp=None, bn_eps=None, model_kwargs={}, drop=0.0, epochs=3)


def fashion_folder(root: Path) -> Path:
    """`root`/train and `root`/validation with one tiny image in each of `FASHION_CLASSES`."""
    for split in ('train', 'validation'):
        for name in FASHION_CLASSES:
            write_images(root / split / name, count=1, size=8)
    return root


def write_train_run(run_dir: Path, trained: torch.nn.Module, ema: Optional[Any] = None, metric: float = 41.7,
                    **args: Any) -> Path:
    """`run_dir`/args.yaml and model_best.pth.tar of `trained` (with `ema`); `args` over `TRAIN_DEFAULTS`.

    `args['model']` is train.py's `--model`, which the checkpoint saves as its 'arch'.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    namespace = argparse.Namespace(**{**TRAIN_DEFAULTS, **args})
    (run_dir / 'args.yaml').write_text(yaml.safe_dump(vars(namespace)))
    saver = CheckpointSaver(trained, torch.optim.SGD(trained.parameters(), lr=0.05), args=namespace, model_ema=ema,
                            checkpoint_dir=str(run_dir), recovery_dir=str(run_dir), decreasing=False, max_history=1)
    saver.save_checkpoint(1, metric=metric)
    return run_dir / 'model_best.pth.tar'
