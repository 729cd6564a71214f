"""`timm-gcp demo`: a GCP ResNet and its average-pooling twin trained side by side on Fashion-MNIST, on the CPU.

The GCP model (default `resnet18_isqrt`) and timm's plain model with the same trunk (`resnet18`)
start from the same trunk weights and see the same batches, so the heads are the only difference.
Each epoch trains and evaluates both and prints a row; the curves go to a PNG, the numbers to JSON.
Beside the accuracy it runs one seed of `timm-gcp analyze`'s measures (the landscape probe once an
epoch and the LR ladder; docs/analysis.md): the shape of the measurement, not a difference.

Sized to finish in minutes on a 2-core CPU: 56 px inputs (the GCP ResNets keep the last stage at
stride 1, so the covariance sees a 4x4 map), a quarter of ResNet-18's width, a 32-channel reduction,
channels-last in one thread (small ops on two threads stall each other on a shared machine).
"""
import argparse
import json
import os
import time
from typing import Dict, List, Tuple

import timm
from torch import nn

from .._errors import UsageError, usage_errors
from .._extras import require
from ..analysis.landscape import resolve_split
from ..analysis.options import add_common_arguments, check_common_args, check_pair, torch_threads
from ..analysis.plots import draw_accuracy, draw_ladder, draw_loss, plot_analysis
from ..analysis.run import analyze_seed, make_pair_factory, pair_kwargs
from ..models.registry import baseline_name
from ..training.data import FashionMNISTData
from ..training.fashion_mnist import CLASSES, IN_CHANS, find_fashion_mnist, load_fashion_mnist
from ..training.loop import create_pair

__all__ = ['add_arguments', 'build_models', 'run']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, epochs=4, train_size=6000, test_size=2000, probe_every=94,
                         out_dir=os.path.join('output', 'demo'))
    parser.add_argument('--seed', type=int, default=0, help='seed of the data subset, batches and weights')


def _check_args(args: argparse.Namespace) -> Tuple[str, str]:
    """The GCP model and its twin; UsageError naming the first bad option."""
    gcp_models = timm.list_models(module='gcp_resnet')
    if args.model not in gcp_models:
        raise UsageError(f"--model '{args.model}' is not a GCP ResNet; choose one of: {', '.join(gcp_models)}")
    baseline = args.baseline or baseline_name(args.model)
    if not timm.is_model(baseline):
        raise UsageError(f"--baseline '{baseline}' is not a timm model")
    check_common_args(args, args.model)
    return args.model, baseline


def _kwargs(names: Tuple[str, str], width: float, gcp_dim: int) -> Tuple[Dict, Dict]:
    return pair_kwargs(names, width, gcp_dim, in_chans=IN_CHANS, num_classes=len(CLASSES), extra=({}, {}))


def build_models(model: str, baseline: str, width: float, gcp_dim: int, seed: int) -> Tuple[nn.Module, nn.Module]:
    """The GCP model and its twin for 1-channel, 10-class input, with the same initial trunk weights."""
    return create_pair((model, baseline), _kwargs((model, baseline), width, gcp_dim), seed)


def probe_lines(names: Tuple[str, str], probes: Dict) -> List[str]:
    """Per model, its probes' measures averaged over the probe steps: the scale-free ones first, then the raw."""
    def mean(key: str, model: str) -> float:
        return sum(p[key] for p in probes[model]) / len(probes[model])

    return [f"landscape, {name} (mean of {len(probes[key])} probes): loss band / first-order "
            f"{mean('loss_band_rel', key):.3g}, max gradient change / ||g|| {mean('grad_change_rel', key):.3g}, "
            f"beta {mean('beta', key):.3g}; raw: loss band {mean('loss_band', key):.3g}, max gradient change "
            f"{mean('max_grad_change', key):.3g}, ||g|| {mean('grad_norm', key):.3g}"
            for name, key in zip(names, ('gcp', 'twin'))]


def run(args: argparse.Namespace) -> int:
    require('matplotlib', 'demo')  # missing, it would fail at the plot, after the training
    names = _check_args(args)
    kwargs = _kwargs(names, args.width, args.gcp_dim)
    share = check_pair(names, kwargs, IN_CHANS, args.img_size, unpaired=args.unpaired)
    make_pair = make_pair_factory(names, kwargs, args.seed)
    models = make_pair()
    with usage_errors(ValueError):  # the split point and the data folder
        for model in models:
            resolve_split(model, args.split)
        folder = find_fashion_mnist(args.data_dir, args.download_dir)
        train = load_fashion_mnist(folder, 'train')
        test = load_fashion_mnist(folder, 'test')
    data = FashionMNISTData(train, test, args.train_size, args.test_size, args.img_size, args.batch_size, args.seed)
    params = [sum(p.numel() for p in m.parameters()) for m in models]
    print(f'Fashion-MNIST from {folder}: {data.describe()}, {args.epochs} epochs, AdamW lr {args.lr:g}, '
          f'seed {args.seed}, {args.threads} thread(s)')
    reduction = f'GCP reduction to {args.gcp_dim}' if args.gcp_dim else 'no GCP reduction'
    print(f'{names[0]}: {params[0] / 1e6:.2f} M parameters (width {args.width:g}, {reduction}); '
          f'{names[1]}: {params[1] / 1e6:.2f} M, {share.note}; landscape probe at {args.split} every '
          f'{args.probe_every} updates (step sizes {args.step_range[0]:g}-{args.step_range[1]:g}); '
          f'LR ladder {" ".join(map(str, args.ladder_lrs)) or "off"}', flush=True)
    start = time.perf_counter()
    with torch_threads(args.threads):
        result = analyze_seed(names, make_pair, data, args, args.seed, twin_label='average pool')
    history = result['history']

    os.makedirs(args.out_dir, exist_ok=True)
    png, json_path = os.path.join(args.out_dir, 'curves.png'), os.path.join(args.out_dir, 'history.json')
    top = [draw_loss, draw_accuracy] + ([draw_ladder] if args.ladder_lrs else [])
    plot_analysis([result], names, png, f'Fashion-MNIST: GCP head vs average pooling, {share.note}, seed '
                  f'{args.seed} (one seed: see timm-gcp analyze for the spread)', top)
    with open(json_path, 'w') as f:
        json.dump(dict(models=dict(gcp=names[0], twin=names[1]), trunk=share.to_dict(), args=vars(args),
                       epochs=history, probes=result['probes'], ladder=result.get('ladder', []),
                       ladder_reference=result.get('ladder_reference')), f, indent=1)
    for line in probe_lines(names, result['probes']):
        print(line)
    for rung in result.get('ladder', []):
        accs = [rung['epochs'][-1][key]['test_acc'] for key in ('gcp', 'twin')]
        drops = [result['ladder_reference']['test_acc'][key] - acc for key, acc in zip(('gcp', 'twin'), accs)]
        print(f"LR ladder lr {rung['lr']:g}: " + ', '.join(
            f'{name} {acc:.2f} % (drop from the main run {drop:+.2f} points)'
            for name, acc, drop in zip(names, accs, drops)))
    best = [max(history, key=lambda h: h[key]['test_acc']) for key in ('gcp', 'twin')]
    print('best test accuracy: ' + ', '.join(
        f"{name} {h[key]['test_acc']:.2f} % (epoch {h['epoch']})"
        for name, key, h in zip(names, ('gcp', 'twin'), best)))
    print(f'curves: {png}, numbers: {json_path}, total time {time.perf_counter() - start:.0f} s')
    return 0
