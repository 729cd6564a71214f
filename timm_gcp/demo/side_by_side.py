"""`timm-gcp demo`: a GCP ResNet and its average-pooling twin trained side by side on Fashion-MNIST, on the CPU.

The GCP model (default `resnet18_isqrt`) and timm's plain model with the same trunk (`resnet18`)
start from the same trunk weights and see the same batches in the same order, so the heads are
the only difference. Each epoch trains both, evaluates both on held-out images, and prints a row
of the table; at the end the curves go to a PNG and the numbers to a JSON file.

A small setup that finishes in a few minutes on a 2-core CPU: the 28x28 images are upsampled to
56 px (the GCP ResNets keep the last stage at stride 1, so the covariance sees a 4x4 map; at
28 px it would see 2x2), the four stages run at a quarter of ResNet-18's width (channels 16-128)
and the head reduces to 32 channels. Both models run channels-last (about twice as fast on the
CPU) in one thread: two threads of such small ops stall each other when other work shares a
2-core machine (measured several times slower there). Training uses timm's pieces as train.py
does: `create_model`, `create_optimizer_v2` (AdamW), `create_scheduler_v2` (cosine, per update)
and `timm.task.ClassificationTask`.
"""
import argparse
import json
import os
import sys
import time
from typing import Any, Dict, Iterator, List, Tuple

import timm
import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.task import ClassificationTask
from torch import nn

from .._extras import require
from ..models.registry import baseline_name
from .fashion_mnist import CLASSES, find_fashion_mnist, load_fashion_mnist

__all__ = ['add_arguments', 'build_models', 'plot_curves', 'run', 'train_side_by_side']

MEAN, STD = 0.2860, 0.3530  # of the Fashion-MNIST training images
RESNET_CHANNELS = (64, 128, 256, 512)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', default='resnet18_isqrt', metavar='NAME',
                        help='GCP ResNet to train (default: resnet18_isqrt; see timm.list_models(module="gcp_resnet"))')
    parser.add_argument('--baseline', default=None, metavar='NAME',
                        help="average-pooling twin (default: timm's plain model of the same trunk, e.g. resnet18)")
    parser.add_argument('--epochs', type=int, default=4, help='epochs (default: 4)')
    parser.add_argument('--train-size', type=int, default=6000, metavar='N',
                        help='training images drawn from the 60,000 (default: 6000)')
    parser.add_argument('--test-size', type=int, default=2000, metavar='N',
                        help='test images drawn from the 10,000 (default: 2000)')
    parser.add_argument('--img-size', type=int, default=56, metavar='PX', help='input size (default: 56)')
    parser.add_argument('--width', type=float, default=0.25,
                        help="multiplier of the stages' channels 64-512 (default: 0.25)")
    parser.add_argument('--gcp-dim', type=int, default=32, help='GCP reduction channels (default: 32)')
    parser.add_argument('--batch-size', type=int, default=64, help='batch size (default: 64)')
    parser.add_argument('--lr', type=float, default=2e-3, help='AdamW peak learning rate (default: 2e-3)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the data subset, batches and weights')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (default: 1)')
    parser.add_argument('--data-dir', default=None, metavar='DIR',
                        help="folder with the Fashion-MNIST idx files (default: Debian's "
                             "/usr/share/datasets/fashion-mnist, else torchvision's download)")
    parser.add_argument('--download-dir', default=None, metavar='DIR',
                        help='where torchvision downloads Fashion-MNIST if needed (default: ~/.cache/timm_gcp)')
    parser.add_argument('--out-dir', default=os.path.join('output', 'demo'), metavar='DIR',
                        help='where curves.png and history.json go (default: output/demo)')


def _check_args(args: argparse.Namespace) -> Tuple[str, str]:
    """The GCP model and its twin; ValueError naming the first bad option."""
    gcp_models = timm.list_models(module='gcp_resnet')
    if args.model not in gcp_models:
        raise ValueError(f"--model '{args.model}' is not a GCP ResNet; choose one of: {', '.join(gcp_models)}")
    baseline = args.baseline or baseline_name(args.model)
    if not timm.is_model(baseline):
        raise ValueError(f"--baseline '{baseline}' is not a timm model")
    for name in ('epochs', 'train_size', 'test_size', 'img_size', 'batch_size', 'threads'):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.gcp_dim < 2:
        raise ValueError(f'--gcp-dim must be at least 2, got {args.gcp_dim}')
    if not args.width > 0 or not args.lr > 0:
        raise ValueError('--width and --lr must be positive')
    return args.model, baseline


def build_models(model: str, baseline: str, width: float, gcp_dim: int, seed: int) -> Tuple[nn.Module, nn.Module]:
    """The GCP model and its twin for 1-channel, 10-class input, with the same initial trunk weights."""
    channels = tuple(max(8, round(c * width)) for c in RESNET_CHANNELS)
    trunk_args = dict(num_classes=len(CLASSES), in_chans=1, channels=channels)
    torch.manual_seed(seed)
    gcp = timm.create_model(model, gcp_dim=gcp_dim, **trunk_args)
    torch.manual_seed(seed)
    twin = timm.create_model(baseline, **trunk_args)
    twin_state = twin.state_dict()
    shared = {k: v for k, v in gcp.state_dict().items()
              if k in twin_state and v.shape == twin_state[k].shape and not k.startswith(('head.', 'fc.'))}
    twin.load_state_dict(shared, strict=False)
    return gcp, twin


def _batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, img_size: int,
             order: torch.Tensor, flip: torch.Tensor) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Normalized batches upsampled to img_size, in `order`, images with `flip` set mirrored."""
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        x = images[idx].unsqueeze(1).float().div_(255)
        x = torch.where(flip[idx, None, None, None], x.flip(-1), x)
        x = F.interpolate(x, size=(img_size, img_size), mode='bilinear', align_corners=False)
        yield ((x - MEAN) / STD).contiguous(memory_format=torch.channels_last), labels[idx]


def _evaluate(task: ClassificationTask, batches: Iterator[Tuple[torch.Tensor, torch.Tensor]]) -> Dict[str, float]:
    """Test loss and top-1 accuracy (%) of the task's model in eval mode, with the task's evaluator."""
    model = task.get_eval_model()
    model.eval()
    evaluator = task.create_evaluator()
    with torch.no_grad():
        for x, y in batches:
            evaluator.update(model(x), y)
    metrics = evaluator.compute()
    return {'test_loss': metrics['loss'], 'test_acc': metrics['top1']}


class _Trainer:
    """One model with its task, optimizer and per-update cosine schedule."""

    def __init__(self, name: str, model: nn.Module, lr: float, epochs: int, steps_per_epoch: int) -> None:
        self.name = name
        self.params = sum(p.numel() for p in model.parameters())
        self.task = ClassificationTask(model, criterion=nn.CrossEntropyLoss(), verbose=False)
        self.optimizer = create_optimizer_v2(model, opt='adamw', lr=lr, weight_decay=0.05)
        self.scheduler, _ = create_scheduler_v2(
            self.optimizer, sched='cosine', num_epochs=epochs, warmup_epochs=0, min_lr=lr / 100,
            step_on_epochs=False, updates_per_epoch=steps_per_epoch)
        self.updates = 0

    def train_epoch(self, batches: Iterator[Tuple[torch.Tensor, torch.Tensor]], progress: Any) -> float:
        """Train on `batches`; the mean training loss."""
        self.task.train()
        loss_sum, count = 0.0, 0
        for x, y in batches:
            loss = self.task(x, y)['loss']
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.updates += 1
            self.scheduler.step_update(self.updates)
            loss_sum += loss.item() * len(y)
            count += len(y)
            progress.set_postfix_str(f'{self.name} loss {loss.item():.3f}')
            progress.update(1)
        return loss_sum / count


_COLUMNS = ('train loss', 'test loss', 'test acc', 'time')
_WIDTH = 11


def _header(names: Tuple[str, str]) -> List[str]:
    block = len(_COLUMNS) * _WIDTH
    titles = '      ' + f'{names[0] + " (GCP)":^{block}}' + ' |' + f'{names[1] + " (average pool)":^{block}}'
    columns = ''.join(f'{c:>{_WIDTH}}' for c in _COLUMNS)
    return [titles.rstrip(), f'epoch {columns} |{columns}']


def _row(epoch: int, results: List[Dict[str, float]]) -> str:
    blocks = []
    for r in results:
        cells = (f"{r['train_loss']:.4f}", f"{r['test_loss']:.4f}", f"{r['test_acc']:.2f} %", f"{r['seconds']:.0f} s")
        blocks.append(''.join(f'{c:>{_WIDTH}}' for c in cells))
    return f'{epoch:>5} ' + ' |'.join(blocks)


def plot_curves(history: List[Dict], names: Tuple[str, str], path: str) -> None:
    """Loss (train dashed, test solid) and test accuracy per epoch of both models, as a PNG."""
    fig = require('matplotlib.figure', 'demo').Figure(figsize=(9, 3.4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h['epoch'] for h in history]
    for key, name, color in (('gcp', names[0], 'C0'), ('twin', names[1], 'C1')):
        ax_loss.plot(epochs, [h[key]['train_loss'] for h in history], '--', color=color, label=f'{name} train')
        ax_loss.plot(epochs, [h[key]['test_loss'] for h in history], 'o-', color=color, label=f'{name} test')
        ax_acc.plot(epochs, [h[key]['test_acc'] for h in history], 'o-', color=color, label=name)
    ax_loss.set(xlabel='epoch', ylabel='cross-entropy', title='loss')
    ax_acc.set(xlabel='epoch', ylabel='%', title='test accuracy')
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_xticks(epochs)
    fig.suptitle('Fashion-MNIST: GCP head vs average pooling, same trunk', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def train_side_by_side(
        args: argparse.Namespace,
        names: Tuple[str, str],
        folder: str,
        train: Tuple[torch.Tensor, torch.Tensor],
        test: Tuple[torch.Tensor, torch.Tensor],
) -> List[Dict]:
    """Train the GCP model and its twin (`names`) on subsets of `train`, printing a row per epoch; the history."""
    tqdm = require('tqdm', 'demo').tqdm
    generator = torch.Generator().manual_seed(args.seed)
    train_idx = torch.randperm(len(train[1]), generator=generator)[:args.train_size]
    test_idx = torch.randperm(len(test[1]), generator=generator)[:args.test_size]
    train_images, train_labels = train[0][train_idx], train[1][train_idx]
    test_images, test_labels = test[0][test_idx], test[1][test_idx]

    gcp, twin = (m.to(memory_format=torch.channels_last)
                 for m in build_models(names[0], names[1], args.width, args.gcp_dim, args.seed))
    steps = -(-len(train_labels) // args.batch_size)
    trainers = [_Trainer(name, model, args.lr, args.epochs, steps) for name, model in zip(names, (gcp, twin))]
    print(f'Fashion-MNIST from {folder}: {len(train_labels)} training and {len(test_labels)} test images '
          f'at {args.img_size} px, {args.epochs} epochs, batch {args.batch_size}, AdamW lr {args.lr:g}, '
          f'seed {args.seed}, {torch.get_num_threads()} thread(s)')
    print(f'{names[0]}: {trainers[0].params / 1e6:.2f} M parameters (width {args.width:g}, GCP reduction '
          f'to {args.gcp_dim}); {names[1]}: {trainers[1].params / 1e6:.2f} M, same initial trunk')
    print('\n'.join(_header(names)), flush=True)

    no_flip = torch.zeros(len(test_labels), dtype=torch.bool)
    test_order = torch.arange(len(test_labels))
    history = []
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(train_labels), generator=generator)
        flip = torch.rand(len(train_labels), generator=generator) < 0.5
        results = []
        with tqdm(total=2 * steps, desc=f'epoch {epoch}/{args.epochs}', leave=False, disable=None,
                  file=sys.stderr) as progress:
            for trainer in trainers:
                t0 = time.perf_counter()
                train_loss = trainer.train_epoch(
                    _batches(train_images, train_labels, args.batch_size, args.img_size, order, flip), progress)
                seconds = time.perf_counter() - t0
                metrics = _evaluate(
                    trainer.task,
                    _batches(test_images, test_labels, 256, args.img_size, test_order, no_flip))
                results.append(dict(train_loss=train_loss, seconds=seconds, **metrics))
        history.append(dict(epoch=epoch, gcp=results[0], twin=results[1]))
        tqdm.write(_row(epoch, results))
    return history


def run(args: argparse.Namespace) -> int:
    require('matplotlib', 'demo')  # missing, it would fail at the plot, after the training
    try:
        names = _check_args(args)
        folder = find_fashion_mnist(args.data_dir, args.download_dir)
        train = load_fashion_mnist(folder, 'train')
        test = load_fashion_mnist(folder, 'test')
    except ValueError as e:
        print(f'timm-gcp demo: error: {e}', file=sys.stderr)
        return 2
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        history = train_side_by_side(args, names, folder, train, test)
    finally:
        torch.set_num_threads(threads)

    os.makedirs(args.out_dir, exist_ok=True)
    png, json_path = os.path.join(args.out_dir, 'curves.png'), os.path.join(args.out_dir, 'history.json')
    plot_curves(history, names, png)
    with open(json_path, 'w') as f:
        json.dump(dict(models=dict(gcp=names[0], twin=names[1]), args=vars(args), epochs=history), f, indent=1)
    best = [max(history, key=lambda h: h[key]['test_acc']) for key in ('gcp', 'twin')]
    print('best test accuracy: ' + ', '.join(
        f"{name} {h[key]['test_acc']:.2f} % (epoch {h['epoch']})"
        for name, key, h in zip(names, ('gcp', 'twin'), best)))
    print(f'curves: {png}, numbers: {json_path}, total time {time.perf_counter() - start:.0f} s')
    return 0
