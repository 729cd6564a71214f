"""`timm-gcp demo`: a GCP ResNet and its average-pooling twin trained side by side on Fashion-MNIST, on the CPU.

The GCP model (default `resnet18_isqrt`) and timm's plain model with the same trunk (`resnet18`)
start from the same trunk weights and see the same batches in the same order, so the heads are
the only difference. Each epoch trains both, evaluates both on held-out images, and prints a row
of the table; at the end the curves go to a PNG and the numbers to a JSON file.

A small setup that finishes in a few minutes on a 2-core CPU: the 28x28 images are upsampled to
56 px (the GCP ResNets keep the last stage at stride 1, so the covariance sees a 4x4 map; at
28 px it would see 2x2), the four stages run at a quarter of ResNet-18's width (channels 16-128)
and the head reduces to 32 channels. Beside the accuracy curves the demo measures two of the seed
paper's optimization findings (`timm_gcp.analysis`, docs/analysis.md): the loss landscape and
gradient predictiveness bands along the gradient at the stem's output, probed once an epoch, and an
LR ladder (fresh pairs trained for one epoch at several SGD learning rates with a fast decay). One
seed shows the shape of the measurement, not a difference: `timm-gcp analyze` repeats it over seeds.
Both models run channels-last (about twice as fast on the
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
from typing import Dict, Tuple

import timm
import torch
from torch import nn

from .._extras import require
from ..analysis.landscape import resolve_split
from ..analysis.plots import draw_accuracy, draw_ladder, draw_loss, plot_analysis
from ..analysis.run import (add_ladder_arguments, add_probe_arguments, analyze_seed, check_common_args,
                            make_pair_factory, pair_kwargs)
from ..models.registry import baseline_name
from ..training.data import FashionMNISTData
from ..training.fashion_mnist import CLASSES, find_fashion_mnist, load_fashion_mnist
from ..training.loop import create_pair

__all__ = ['add_arguments', 'build_models', 'run']


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
    add_probe_arguments(parser, every=94)
    add_ladder_arguments(parser, epochs=1)


def _check_args(args: argparse.Namespace) -> Tuple[str, str]:
    """The GCP model and its twin; ValueError naming the first bad option."""
    gcp_models = timm.list_models(module='gcp_resnet')
    if args.model not in gcp_models:
        raise ValueError(f"--model '{args.model}' is not a GCP ResNet; choose one of: {', '.join(gcp_models)}")
    baseline = args.baseline or baseline_name(args.model)
    if not timm.is_model(baseline):
        raise ValueError(f"--baseline '{baseline}' is not a timm model")
    check_common_args(args)
    if args.gcp_dim < 2:
        raise ValueError(f'--gcp-dim must be at least 2, got {args.gcp_dim}')
    if not args.width > 0:
        raise ValueError('--width must be positive')
    return args.model, baseline


def _kwargs(names: Tuple[str, str], width: float, gcp_dim: int) -> Tuple[Dict, Dict]:
    return pair_kwargs(names, width, gcp_dim, in_chans=1, num_classes=len(CLASSES), extra=({}, {}))


def build_models(model: str, baseline: str, width: float, gcp_dim: int, seed: int) -> Tuple[nn.Module, nn.Module]:
    """The GCP model and its twin for 1-channel, 10-class input, with the same initial trunk weights."""
    return create_pair((model, baseline), _kwargs((model, baseline), width, gcp_dim), seed)


def run(args: argparse.Namespace) -> int:
    require('matplotlib', 'demo')  # missing, it would fail at the plot, after the training
    try:
        names = _check_args(args)
        make_pair = make_pair_factory(names, _kwargs(names, args.width, args.gcp_dim), args.seed)
        models = make_pair()
        for model in models:
            resolve_split(model, args.split)
        folder = find_fashion_mnist(args.data_dir, args.download_dir)
        train = load_fashion_mnist(folder, 'train')
        test = load_fashion_mnist(folder, 'test')
    except ValueError as e:
        print(f'timm-gcp demo: error: {e}', file=sys.stderr)
        return 2
    data = FashionMNISTData(train, test, args.train_size, args.test_size, args.img_size, args.batch_size, args.seed)
    params = [sum(p.numel() for p in m.parameters()) for m in models]
    print(f'Fashion-MNIST from {folder}: {data.describe()}, {args.epochs} epochs, AdamW lr {args.lr:g}, '
          f'seed {args.seed}, {args.threads} thread(s)')
    print(f'{names[0]}: {params[0] / 1e6:.2f} M parameters (width {args.width:g}, GCP reduction to {args.gcp_dim}); '
          f'{names[1]}: {params[1] / 1e6:.2f} M, same initial trunk; landscape probe at {args.split} every '
          f'{args.probe_every} updates; LR ladder {" ".join(map(str, args.ladder_lrs)) or "off"}', flush=True)
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        result = analyze_seed(names, make_pair, data, args, args.seed, twin_label='average pool')
    finally:
        torch.set_num_threads(threads)
    history = result['history']

    os.makedirs(args.out_dir, exist_ok=True)
    png, json_path = os.path.join(args.out_dir, 'curves.png'), os.path.join(args.out_dir, 'history.json')
    top = [draw_loss, draw_accuracy] + ([draw_ladder] if args.ladder_lrs else [])
    plot_analysis([result], names, png, f'Fashion-MNIST: GCP head vs average pooling, same trunk, seed {args.seed} '
                  '(one seed: see timm-gcp analyze for the spread)', top)
    with open(json_path, 'w') as f:
        json.dump(dict(models=dict(gcp=names[0], twin=names[1]), args=vars(args), epochs=history,
                       probes=result['probes'], ladder=result.get('ladder', [])), f, indent=1)
    for rung in result.get('ladder', []):
        print(f"LR ladder lr {rung['lr']:g}: " + ', '.join(
            f"{name} {rung['epochs'][-1][key]['test_acc']:.2f} %" for name, key in zip(names, ('gcp', 'twin'))))
    best = [max(history, key=lambda h: h[key]['test_acc']) for key in ('gcp', 'twin')]
    print('best test accuracy: ' + ', '.join(
        f"{name} {h[key]['test_acc']:.2f} % (epoch {h['epoch']})"
        for name, key, h in zip(names, ('gcp', 'twin'), best)))
    print(f'curves: {png}, numbers: {json_path}, total time {time.perf_counter() - start:.0f} s')
    return 0
