"""`timm-gcp probe`: a GCP probe against timm's linear probe on the same frozen trunk, over seeds, on Fashion-MNIST.

Per seed a small timm trunk (default: ResNet-18 at a quarter of its width, average pooling) is trained
briefly on one half of Fashion-MNIST's training images; then two probes are built on copies of its
tensors: timm's model with a fresh classifier on the pooled features (the linear probe) and the generic
GCP model (`gcp_isqrt` with `backbone=` the trunk) with a fresh GCP head. Both trunks are frozen
(`training.finetune.freeze_trunk`) and both heads train on the same batches of the other half; after
training, every trunk tensor of both probes is checked bit-identical to the trained trunk. The summary
compares the two over the seeds with `spread.compare`. See docs/probing.md, "The probe comparison".
"""
import argparse
import copy
import json
import os
import time
from typing import Dict, List, Mapping, Sequence, Tuple

import timm
import torch
from timm.utils import ParseKwargs
from torch import nn

from .._errors import CommandError, UsageError, check_model_kwargs, usage_errors
from .._extras import require
from ..measure import MetaBuildError, MetaInputError, build_on_meta, run_on_meta
from ..models.registry import generic_names, is_gcp_model
from ..training.data import FashionMNISTData
from ..training.fashion_mnist import CLASSES, IN_CHANS, find_fashion_mnist, load_fashion_mnist
from ..training.finetune import freeze_trunk, head_module_names, head_parameters, in_modules
from ..training.loop import OptimConfig, Trainer, small_resnet_kwargs, table_header, train_pair
from .options import add_run_arguments, check_run_args, torch_threads
from .plots import draw_accuracy, draw_loss, figure
from .run import format_summary
from .spread import compare, holm

__all__ = ['add_arguments', 'build_probes', 'changed_tensors', 'probe_seed', 'run', 'summarize', 'train_trunk',
           'trunk_kwargs', 'trunk_state']

Images = Tuple[torch.Tensor, torch.Tensor]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--trunk', default='resnet18', metavar='NAME',
                        help="timm's plain model whose trunk is trained, then probed (default: %(default)s)")
    parser.add_argument('--trunk-kwargs', nargs='*', default={}, action=ParseKwargs, metavar='KEY=VALUE',
                        help='create_model kwargs of the trunk, over the ResNet defaults (width, output_stride=16)')
    parser.add_argument('--width', type=float, default=0.25,
                        help="ResNet trunks: multiplier of the stages' channels 64-512 (default: %(default)s)")
    parser.add_argument('--method', default='isqrt', choices=[n.removeprefix('gcp_') for n in generic_names()],
                        help='the GCP probe: the generic model gcp_METHOD on the trunk (default: %(default)s)')
    parser.add_argument('--gcp-dim', type=int, default=32,
                        help="the GCP probe's reduction channels; 0: the covariance of the trunk's channels "
                             '(default: %(default)s)')
    parser.add_argument('--trunk-epochs', type=int, default=3, help='epochs of the trunk training (default: 3)')
    parser.add_argument('--trunk-lr', type=float, default=2e-3, help='AdamW peak LR of the trunk (default: 2e-3)')
    parser.add_argument('--epochs', type=int, default=4, help='epochs of the probes (default: %(default)s)')
    parser.add_argument('--lr', type=float, default=2e-3, help='AdamW peak LR of both probes (default: 2e-3)')
    parser.add_argument('--batch-size', type=int, default=64, help='batch size (default: %(default)s)')
    parser.add_argument('--img-size', type=int, default=56, metavar='PX', help='input size (default: %(default)s)')
    parser.add_argument('--trunk-train-size', type=int, default=4000, metavar='N',
                        help="trunk training images, from the first half of the training set (default: %(default)s)")
    parser.add_argument('--train-size', type=int, default=4000, metavar='N',
                        help='probe training images, from the second half (default: %(default)s)')
    parser.add_argument('--test-size', type=int, default=2000, metavar='N',
                        help='test images, the same for the trunk and both probes (default: %(default)s)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='seeds (default: 0 1 2)')
    add_run_arguments(parser, os.path.join('output', 'probe'))


def trunk_kwargs(trunk: str, width: float, user: Mapping) -> Dict:
    """create_model kwargs of the trunk (both probes' too): a ResNet at `width` whose last stage timm dilates
    (output stride 16: a 4 x 4 map at 56 px, not 2 x 2, for the covariance), then the user's kwargs over them."""
    kwargs = dict(small_resnet_kwargs(width), output_stride=16) if trunk in timm.list_models(module='resnet') else {}
    return dict(kwargs, **user)


def trunk_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The state of `model` outside its classifier: the trunk's parameters and buffers."""
    heads = head_module_names(model, 'classifier')
    return {k: v for k, v in model.state_dict().items() if not in_modules(k, heads)}


def changed_tensors(state: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]) -> List[str]:
    """Names of the `reference` tensors that `state` lacks or holds with another shape, dtype or any other bit."""
    return [k for k, v in reference.items()
            if k not in state or state[k].dtype != v.dtype or not torch.equal(state[k], v)]


def _gcp_model(args: argparse.Namespace) -> str:
    return f'gcp_{args.method}'


def _check_args(args: argparse.Namespace) -> Dict:
    """The trunk's kwargs; UsageError naming the first bad option, both probes built on the meta device."""
    if not timm.is_model(args.trunk):
        raise UsageError(f"--trunk '{args.trunk}' is not a timm model")
    if is_gcp_model(args.trunk):
        raise UsageError(f"--trunk '{args.trunk}' is a GCP model: name timm's plain model (its trunk gets both "
                         f"probes; its classifier on the pooled features is the linear probe), e.g. resnet18")
    for name in ('trunk_epochs', 'epochs', 'batch_size', 'img_size', 'trunk_train_size', 'train_size', 'test_size',
                 'threads'):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not (args.lr > 0 and args.trunk_lr > 0 and args.width > 0):
        raise UsageError('--lr, --trunk-lr and --width must be positive')
    if args.gcp_dim < 0 or args.gcp_dim == 1:
        raise UsageError(f"--gcp-dim must be 0 (no reduction) or at least 2, got {args.gcp_dim}")
    if len(set(args.seeds)) != len(args.seeds):
        raise UsageError(f"--seeds {' '.join(map(str, args.seeds))}: a seed repeated would count one run twice")
    check_model_kwargs(args.trunk_kwargs, '--trunk-kwargs')
    fixed = sorted({'in_chans', 'num_classes', 'backbone'} & set(args.trunk_kwargs))
    if fixed:
        raise UsageError(f'--trunk-kwargs {fixed[0]}=...: the command sets it (Fashion-MNIST: {IN_CHANS} channel, '
                         f'{len(CLASSES)} classes; the GCP probe\'s backbone is --trunk); leave it out')
    check_run_args(args)
    kwargs = trunk_kwargs(args.trunk, args.width, args.trunk_kwargs)
    size = (IN_CHANS, args.img_size, args.img_size)
    probes = ((args.trunk, dict(kwargs)), (_gcp_model(args), dict(kwargs, backbone=args.trunk, gcp_dim=args.gcp_dim)))
    built = []
    for name, model_kwargs in probes:
        with usage_errors(MetaBuildError, prefix=f'--trunk {args.trunk}: '):
            built.append(build_on_meta(name, in_chans=IN_CHANS, num_classes=len(CLASSES), **model_kwargs))
        try:
            run_on_meta(built[-1], size)
        except MetaInputError as e:
            raise UsageError(f'{name} on --trunk {args.trunk} cannot take the 1-channel images at --img-size '
                             f'{args.img_size}: {e}') from e
    theirs, ours = trunk_state(built[0]), built[1].backbone.state_dict()
    if {k: v.shape for k, v in theirs.items()} != {k: v.shape for k, v in ours.items()}:
        raise UsageError(f"--trunk {args.trunk}: the GCP probe's backbone does not hold the tensors of the trunk "
                         f"outside its classifier ({len(theirs)} against {len(ours)}); choose another trunk")
    return kwargs


def _load(args: argparse.Namespace) -> Tuple[Images, Images]:
    """Fashion-MNIST's training and test images; UsageError for a missing folder or sizes beyond the data."""
    with usage_errors(ValueError, RuntimeError):
        folder = find_fashion_mnist(args.data_dir, args.download_dir)
        train, test = load_fashion_mnist(folder, 'train'), load_fashion_mnist(folder, 'test')
    half = len(train[1]) // 2
    for flag, size, available in (('--trunk-train-size', args.trunk_train_size, half),
                                  ('--train-size', args.train_size, len(train[1]) - half),
                                  ('--test-size', args.test_size, len(test[1]))):
        if size > available:
            raise UsageError(f'{flag} {size}: the data has {available} images for it (the trunk and the probes '
                             f'each take half of the {len(train[1])} training images)')
    return train, test


def _split(train: Images, first: bool) -> Images:
    half = len(train[1]) // 2
    return tuple(t[:half] if first else t[half:] for t in train)


def train_trunk(model: nn.Module, data: FashionMNISTData, epochs: int, lr: float, seed: int) -> List[Dict]:
    """Train the trunk's model (timm's model, classifier included) as the demo trains; its per-epoch history."""
    trainer = Trainer('trunk', model, OptimConfig(lr=lr), epochs, data.steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(1, epochs + 1):
        for x, y in data.train_batches(generator):
            trainer.step(x, y)
        history.append(dict(epoch=epoch, **trainer.end_epoch(data.test_batches())))
        print(f"trunk epoch {epoch}/{epochs}: train loss {history[-1]['train_loss']:.4f}, test acc "
              f"{history[-1]['test_acc']:.2f} % ({history[-1]['seconds']:.0f} s)", flush=True)
    return history


def build_probes(trunk: nn.Module, gcp_name: str, gcp_kwargs: Mapping, seed: int) -> Tuple[nn.Module, nn.Module]:
    """The GCP probe (`gcp_name` on a copy of the trunk, a fresh GCP head) and the linear probe (a copy of `trunk`
    with a fresh classifier), both trunks frozen. `gcp_kwargs` build the GCP model (backbone=, gcp_dim, ...)."""
    torch.manual_seed(seed)
    gcp = timm.create_model(gcp_name, **gcp_kwargs)
    gcp.backbone.load_state_dict(trunk_state(trunk))
    linear = copy.deepcopy(trunk)
    linear.reset_classifier(trunk.num_classes)
    for model in (gcp, linear):
        freeze_trunk(model)
    return gcp.to(memory_format=torch.channels_last), linear.to(memory_format=torch.channels_last)


def probe_seed(args: argparse.Namespace, kwargs: Mapping, train: Images, test: Images, seed: int) -> Dict:
    """One seed: the trunk trained, both probes trained on it frozen, the trunk tensors checked; every number."""
    names = (_gcp_model(args), args.trunk)
    trunk_data = FashionMNISTData(_split(train, True), test, args.trunk_train_size, args.test_size, args.img_size,
                                  args.batch_size, seed)
    probe_data = FashionMNISTData(_split(train, False), test, args.train_size, args.test_size, args.img_size,
                                  args.batch_size, seed)
    torch.manual_seed(seed)
    trunk = timm.create_model(args.trunk, in_chans=IN_CHANS, num_classes=len(CLASSES), **kwargs)
    trunk = trunk.to(memory_format=torch.channels_last)
    trunk_history = train_trunk(trunk, trunk_data, args.trunk_epochs, args.trunk_lr, seed)
    reference = {k: v.clone() for k, v in trunk_state(trunk).items()}
    gcp_kwargs = dict(kwargs, backbone=args.trunk, gcp_dim=args.gcp_dim, in_chans=IN_CHANS, num_classes=len(CLASSES))
    gcp, linear = build_probes(trunk, names[0], gcp_kwargs, seed)
    print('\n'.join(table_header(names, 'linear probe')), flush=True)
    history = train_pair(names, (gcp, linear), probe_data, args.epochs, OptimConfig(lr=args.lr),
                         torch.Generator().manual_seed(seed), desc=f'seed {seed} ')
    for label, state in (('GCP probe', gcp.backbone.state_dict()), ('linear probe', trunk_state(linear))):
        changed = changed_tensors(state, reference)
        if changed:
            raise CommandError(f"the frozen trunk of the {label} changed in training: {', '.join(changed[:5])} "
                               f'(a bug: freeze_trunk must keep every trunk tensor)')
    return dict(seed=seed, trunk=dict(history=trunk_history, test_acc=trunk_history[-1]['test_acc']),
                history=history, trunk_tensors_unchanged=len(reference),
                head_params=dict(gcp=sum(p.numel() for p in head_parameters(gcp)),
                                 twin=sum(p.numel() for p in head_parameters(linear))),
                trunk_params=sum(v.numel() for k, v in trunk.named_parameters() if k in reference))


def summarize(seeds: Sequence[Dict]) -> List[Tuple[str, Dict]]:
    """(metric, comparison over seeds) rows: test accuracy after the first and the last epoch of the probes."""
    epochs = len(seeds[0]['history'])
    rows = [(f'test acc after probe epoch {e} (%)',
             compare([s['history'][e - 1]['gcp']['test_acc'] for s in seeds],
                     [s['history'][e - 1]['twin']['test_acc'] for s in seeds]))
            for e in sorted({1, epochs})]
    holm([c for _, c in rows])
    return rows


def format_seeds(seeds: Sequence[Dict], names: Sequence[str]) -> List[str]:
    """The per-seed table: the trunk's own classifier, both probes and their difference, in test accuracy (%)."""
    lines = [f'| seed | trunk + its own classifier | {names[1]} linear probe | {names[0]} probe | GCP - linear |',
             '|---|---|---|---|---|']
    for s in seeds:
        gcp, linear = s['history'][-1]['gcp']['test_acc'], s['history'][-1]['twin']['test_acc']
        lines.append(f"| {s['seed']} | {s['trunk']['test_acc']:.2f} | {linear:.2f} | {gcp:.2f} | {gcp - linear:+.2f} |")
    return lines


def _plot(seeds: Sequence[Dict], names: Sequence[str], path: str, title: str) -> None:
    fig, axes = figure(1, 2)
    labels = (f'{names[0]} probe', f'{names[1]} linear probe')
    draw_loss(axes[0][0], seeds, labels)
    draw_accuracy(axes[0][1], seeds, labels)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def run(args: argparse.Namespace) -> int:
    require('matplotlib', 'demo')  # missing, it would fail at the plot, after the training
    require('tqdm', 'demo')
    kwargs = _check_args(args)
    train, test = _load(args)
    names = (_gcp_model(args), args.trunk)
    print(f'{names[0]} probe against the {names[1]} linear probe on the same frozen trunk, Fashion-MNIST: trunk '
          f'{args.trunk_train_size} images x {args.trunk_epochs} epochs (lr {args.trunk_lr:g}), probes '
          f'{args.train_size} other images x {args.epochs} epochs (AdamW lr {args.lr:g}), {args.test_size} test '
          f'images at {args.img_size} px, seeds {" ".join(map(str, args.seeds))}', flush=True)
    start = time.perf_counter()
    with torch_threads(args.threads):
        seeds = [probe_seed(args, kwargs, train, test, seed) for seed in args.seeds]
    rows = summarize(seeds)
    heads = seeds[0]['head_params']
    print('\n'.join(format_seeds(seeds, names)))
    print('\n'.join(format_summary(rows, names, args.test_size, roles=('GCP probe', 'linear probe'))))
    size = 'larger: a fair reading counts it' if heads['gcp'] > heads['twin'] else 'not larger'
    print(f"head parameters: GCP probe {heads['gcp']:,}, linear probe {heads['twin']:,} "
          f"({heads['gcp'] / heads['twin']:.1f}x: the GCP head is {size}); frozen trunk "
          f"{seeds[0]['trunk_params']:,} parameters, {seeds[0]['trunk_tensors_unchanged']} tensors bit-identical "
          'after probing in every seed')
    os.makedirs(args.out_dir, exist_ok=True)
    png, json_path = os.path.join(args.out_dir, 'probe.png'), os.path.join(args.out_dir, 'probe.json')
    _plot(seeds, names, png, f'{names[0]} probe vs {names[1]} linear probe, same frozen trunk, Fashion-MNIST, '
          f'{len(seeds)} seed(s): mean, min-max shaded')
    with open(json_path, 'w') as f:
        json.dump(dict(models=dict(gcp=names[0], twin=names[1]), trunk_kwargs=kwargs, args=vars(args),
                       summary={metric: c for metric, c in rows}, seeds=seeds), f, indent=1)
    print(f'figure: {png}, numbers: {json_path}, total time {time.perf_counter() - start:.0f} s')
    return 0
