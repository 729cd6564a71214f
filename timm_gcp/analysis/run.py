"""`timm-gcp analyze`: the seed paper's optimization findings measured on any two timm models, over seeds.

For each seed the pair (a GCP model and its average-pooling twin by default) is built with the same
initial trunk and trained on the same batches (the demo's loop); every `--probe-every` updates the
landscape probe runs on both; then the LR ladder trains fresh pairs at several learning rates; then
both trained models are tested on corrupted test images. The summary compares the models over the
seeds, judges the rows together (Holm) on the scale-free measures, and says "within spread" where the
seeds do not separate them. See docs/analysis.md, "Seeds and spread".
"""
import argparse
import functools
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

import timm
import torch
from timm.models import split_model_name_tag
from timm.utils import ParseKwargs
from torch import nn

from .._errors import UsageError, check_model_kwargs, usage_errors
from .._extras import require
from ..training.data import FashionMNISTData, TimmDatasetData
from ..training.fashion_mnist import find_fashion_mnist, load_fashion_mnist
from ..training.loop import OptimConfig, TrunkShare, create_pair, evaluate, small_resnet_kwargs, table_header, \
    train_pair
from ..models.gcp_backbone import GENERIC_MODELS
from ..models.registry import baseline_name
from .corruptions import CORRUPTIONS, SEVERITIES, check_corruptions, corruption, mean_corruption_error
from .landscape import probe_activations, probe_parameters, resolve_split, step_sizes
from .lr_ladder import train_ladder
from .options import add_common_arguments, check_common_args, check_pair, torch_threads
from .plots import draw_accuracy, draw_corruptions, draw_ladder, plot_analysis, plot_parameter_probes
from .spread import ALPHA, compare, holm

__all__ = ['add_arguments', 'analyze_seed', 'format_summary', 'make_pair_factory', 'pair_kwargs', 'prepare', 'run',
           'summarize', 'trunk_arch']

FASHION_MNIST = 'fashion-mnist'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, epochs=2, train_size=1000, test_size=300, probe_every=10,
                         out_dir=os.path.join('output', 'analysis'))
    parser.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs, metavar='KEY=VALUE',
                        help="create_model kwargs of the GCP model (replace the small-ResNet defaults)")
    parser.add_argument('--baseline-kwargs', nargs='*', default={}, action=ParseKwargs, metavar='KEY=VALUE',
                        help='create_model kwargs of the twin')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='seeds (default: 0 1 2)')
    parser.add_argument('--dataset', default=FASHION_MNIST,
                        help="'fashion-mnist' (default) or a timm dataset: 'folder' (ImageFolder at --data-dir), "
                             "'torch/cifar10', 'hfds/...'")
    parser.add_argument('--train-split', default='train', help='timm datasets: training split (default: train)')
    parser.add_argument('--test-split', default='validation', help='timm datasets: test split (default: validation)')
    parser.add_argument('--workers', type=int, default=2, help='timm datasets: loader workers (default: 2)')
    parser.add_argument('--corruptions', nargs='*', default=list(CORRUPTIONS), metavar='NAME',
                        help=f"corruptions, 5 severities each; none skips them (default: all: {' '.join(CORRUPTIONS)})")


def trunk_arch(name: str, kwargs: Dict[str, Any]) -> str:
    """The timm architecture of a model's trunk: the `backbone` of a model on any backbone (gcp_isqrt, ...),
    else the model's own name."""
    backbone = kwargs.get('backbone')
    return split_model_name_tag(backbone)[0] if name in GENERIC_MODELS and isinstance(backbone, str) else name


def pair_kwargs(names: Sequence[str], width: float, gcp_dim: int, in_chans: int, num_classes: int,
                extra: Sequence[Dict[str, Any]]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """create_model kwargs of both models: the data's channels and classes, the small ResNet trunk for
    ResNet trunks (a GCP model on a `backbone` ResNet too, so it keeps its twin's width) and the GCP
    reduction for GCP ResNets, then the user's kwargs over them."""
    resnets = set(timm.list_models(module='resnet'))
    gcp_resnets = set(timm.list_models(module='gcp_resnet'))
    result = []
    for name, user in zip(names, extra):
        kwargs = dict(in_chans=in_chans, num_classes=num_classes)
        arch = trunk_arch(name, user)
        if arch in resnets or name in gcp_resnets:
            kwargs.update(small_resnet_kwargs(width))
        if name in gcp_resnets or (name in GENERIC_MODELS and arch in resnets):
            kwargs['gcp_dim'] = gcp_dim
        kwargs.update(user)
        result.append(kwargs)
    return result[0], result[1]


def analyze_seed(
        names: Sequence[str],
        make_pair: Callable[[], Tuple[nn.Module, nn.Module]],
        data: Any,
        args: argparse.Namespace,
        seed: int,
        corruptions: Sequence[str] = (),
        twin_label: str = 'twin',
) -> Dict:
    """One seed: the main run with the landscape probe, the LR ladder and the corruption test; every number."""
    torch.manual_seed(seed)
    gcp, twin = make_pair()
    criterion = nn.CrossEntropyLoss()
    etas = step_sizes(*args.step_range, args.steps)
    param_etas = step_sizes(*args.param_step_range, args.steps)
    probes = dict(gcp=[], twin=[])
    param_probes = dict(gcp=[], twin=[])

    def prober(key: str, model: nn.Module) -> Callable:
        def on_step(step: int, x: torch.Tensor, y: torch.Tensor) -> None:
            if step % args.probe_every:
                return
            probes[key].append(probe_activations(model, args.split, x, y, criterion, etas, step, seed).to_dict())
            if args.param_probe:
                param_probes[key].append(probe_parameters(model, x, y, criterion, param_etas, step, seed).to_dict())
        return on_step

    print('\n'.join(table_header(names, twin_label)), flush=True)
    history = train_pair(names, (gcp, twin), data, args.epochs, OptimConfig(lr=args.lr),
                         torch.Generator().manual_seed(seed), on_step=(prober('gcp', gcp), prober('twin', twin)),
                         desc=f'seed {seed} ')
    result = dict(seed=seed, history=history, probes=probes)
    if args.param_probe:
        result['param_probes'] = param_probes
    if args.ladder_lrs:
        result['ladder_reference'] = dict(rung='main run', opt='adamw', lr=args.lr, sched='cosine', epochs=args.epochs,
                                          test_acc={k: history[-1][k]['test_acc'] for k in ('gcp', 'twin')})
        result['ladder'] = train_ladder(names, make_pair, data, args.ladder_lrs, args.ladder_epochs, seed,
                                        args.ladder_opt)
    if corruptions:
        result['corruptions'] = test_corruptions((gcp, twin), data, corruptions, seed, desc=f'seed {seed} ')
    return result


def test_corruptions(models: Sequence[nn.Module], data: Any, names: Sequence[str], seed: int,
                     desc: str = '') -> Dict:
    """Clean accuracy and error (%) per corruption and severity of both models; the GCP model's mCE."""
    tqdm = require('tqdm', 'demo').tqdm
    results = {}
    with tqdm(total=2 * len(names) * len(SEVERITIES), desc=f'{desc}corruptions', leave=False, disable=None,
              file=sys.stderr) as progress:
        for key, model in zip(('gcp', 'twin'), models):
            errors = {}
            for name in names:
                errors[name] = []
                for severity in SEVERITIES:
                    acc = evaluate(model, data.test_batches(corruption(name, severity, seed)))['test_acc']
                    errors[name].append(100 - acc)
                    progress.update(1)
            results[key] = dict(clean_acc=evaluate(model, data.test_batches())['test_acc'], errors=errors)
    results['mce'] = mean_corruption_error(results['gcp']['errors'], results['twin']['errors'])
    return results


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


# the probe's measures in the summary: (JSON key, row name, judged); the raw widths grow with the gradient's size,
# so the verdicts stand on the scale-free ones (docs/analysis.md, "Scale-free measures")
PROBE_MEASURES = (
    ('loss_band_rel', 'loss band / first-order prediction', True),
    ('grad_change_rel', 'max gradient change / ||g||', True),
    ('beta', 'beta-smoothness', True),
    ('loss_band', 'loss band width', False),
    ('max_grad_change', 'max gradient change', False),
    ('grad_norm', 'gradient norm ||g||', False),
)
RAW = 'raw: not judged'


def summarize(seeds: List[Dict]) -> List[Tuple[str, Dict]]:
    """(metric, comparison over seeds) rows: accuracy, the probes, each ladder rung, the corruptions.

    The rows without RAW as their verdict are judged together (`holm`); the raw probe widths are shown
    beside the scale-free measures but not judged.
    """
    def both(fn: Callable[[Dict, str], float]) -> Tuple[List[float], List[float]]:
        return [fn(s, 'gcp') for s in seeds], [fn(s, 'twin') for s in seeds]

    epochs = len(seeds[0]['history'])
    rows = [(f'test acc after epoch {e} (%)', compare(*both(lambda s, k: s['history'][e - 1][k]['test_acc'])))
            for e in sorted({1, epochs})]
    for probes, space in (('probes', 'activations'), ('param_probes', 'weights')):
        if probes not in seeds[0]:
            continue
        for key, metric, judged in PROBE_MEASURES:
            c = compare(*both(lambda s, k: _mean([p[key] for p in s[probes][k]])), 'lower')
            if not judged:
                c['verdict'] = RAW
            rows.append((f'{metric}, {space}', c))
    for i, rung in enumerate(seeds[0].get('ladder', [])):
        rows.append((f"LR ladder lr {rung['lr']:g}: acc (%)",
                     compare(*both(lambda s, k: s['ladder'][i]['epochs'][-1][k]['test_acc']))))
        if 'ladder_reference' in seeds[0]:
            rows.append((f"LR ladder lr {rung['lr']:g}: drop from reference (points)", compare(*both(
                lambda s, k: s['ladder_reference']['test_acc'][k] - s['ladder'][i]['epochs'][-1][k]['test_acc']),
                'lower')))
    if 'corruptions' in seeds[0]:
        rows.append(('corrupted test acc (%)', compare(*both(
            lambda s, k: 100 - _mean([e for errs in s['corruptions'][k]['errors'].values() for e in errs])))))
        mce = [s['corruptions']['mce'] for s in seeds]
        rows.append(('mCE (twin = 100 %)', compare(mce, [100.0] * len(mce), 'lower')))
    holm([c for _, c in rows if c['verdict'] != RAW])
    return rows


def _cell(d: Dict[str, float]) -> str:
    return f"{d['mean']:.3g} ± {d['std']:.2g} [{d['min']:.3g}, {d['max']:.3g}]"


def format_summary(rows: List[Tuple[str, Dict]], names: Sequence[str], test_size: int, title: str = '',
                   reference: str = '', roles: Sequence[str] = ('GCP', 'twin')) -> List[str]:
    """The summary table: both models' mean ± std [min, max] over seeds, the difference, its interval and
    Holm-adjusted p-value and the verdict; under it what the verdicts stand on, `reference` (the LR ladder's
    reference rung) and the resolution of a test accuracy on `test_size` images. `roles` names the two
    columns' models in the header."""
    header = ('metric', f'{names[0]} ({roles[0]})', f'{names[1]} ({roles[1]})', f'{roles[0]} - {roles[1]} (95 % CI)',
              'p (Holm)', 'verdict')
    body = []
    for metric, c in rows:
        ci = f" ± {c['diff']['ci95']:.2g}" if c['diff']['ci95'] > 0 else ''  # NaN: no interval
        p = f"{c['diff']['p_holm']:.2g}" if 'p_holm' in c['diff'] else '-'
        body.append((metric, _cell(c['gcp']), _cell(c['twin']), f"{c['diff']['mean']:+.3g}{ci}", p, c['verdict']))
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [' | '.join(f'{cell:<{w}}' for cell, w in zip(r, widths)).rstrip() for r in [header, *body]]
    lines.insert(1, '-+-'.join('-' * w for w in widths))
    judged = sum('p_holm' in c['diff'] for _, c in rows)
    raw = '; landscape verdicts on the scale-free measures, the raw widths shown but not judged' if any(
        c['verdict'] == RAW for _, c in rows) else ''
    footer = [
        f'verdicts: paired t-test over seeds, Holm-adjusted over the {judged} tested row(s) at {ALPHA:g}; intervals '
        f'unadjusted{raw}',
        f'accuracy resolution: one test image is {100 / test_size:.3g} % (100 / {test_size} test images)',
    ]
    if reference:
        footer.append(f'LR ladder drop: from the reference rung, {reference}, to each rung')
    return ([title] if title else []) + lines + footer


def _check_args(args: argparse.Namespace) -> Tuple[str, str]:
    """The pair's names; UsageError naming the first bad option (before any data or training)."""
    if not timm.is_model(args.model):
        raise UsageError(f"--model '{args.model}' is not a timm model")
    baseline = args.baseline or baseline_name(args.model)
    if baseline is None and args.model in GENERIC_MODELS and isinstance(args.model_kwargs.get('backbone'), str):
        baseline = trunk_arch(args.model, args.model_kwargs)
    if baseline is None:
        raise UsageError(f"'{args.model}' has no plain twin in timm; name one with --baseline")
    check_common_args(args, trunk_arch(args.model, args.model_kwargs))
    check_model_kwargs(args.model_kwargs)
    check_model_kwargs(args.baseline_kwargs, '--baseline-kwargs')
    with usage_errors(ValueError):
        check_corruptions(args.corruptions)
    if args.workers < 0:
        raise UsageError(f'--workers must be at least 0, got {args.workers}')
    if args.dataset != FASHION_MNIST and '/' not in args.dataset and args.data_dir is None:
        raise UsageError(f"--dataset '{args.dataset}' is read from a folder (timm's ImageFolder or tar reader): pass "
                         f"--data-dir DIR, or name another data set: {FASHION_MNIST}, torch/NAME, hfds/NAME")
    return args.model, baseline


@functools.lru_cache(maxsize=1)
def _fashion_mnist(folder: str) -> Tuple[Tuple[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]:
    return load_fashion_mnist(folder, 'train'), load_fashion_mnist(folder, 'test')


def load_data(args: argparse.Namespace, seed: int) -> Any:
    """The data of one seed (its subsets and batch order come from the seed)."""
    if args.dataset == FASHION_MNIST:
        train, test = _fashion_mnist(find_fashion_mnist(args.data_dir, args.download_dir))
        return FashionMNISTData(train, test, args.train_size, args.test_size, args.img_size, args.batch_size, seed)
    return TimmDatasetData(args.dataset, args.data_dir, args.train_split, args.test_split, args.train_size,
                           args.test_size, args.img_size, args.batch_size, seed, args.workers)


def prepare(args: argparse.Namespace) -> Tuple[Tuple[str, str], Tuple[Dict, Dict], Any, TrunkShare]:
    """Names, create_model kwargs, the first seed's data and the trunk the pair shares; UsageError for what the
    options name that cannot be."""
    names = _check_args(args)
    with usage_errors(ValueError, RuntimeError):  # the data set and its folder
        data = load_data(args, args.seeds[0])
    kwargs = pair_kwargs(names, args.width, args.gcp_dim, data.in_chans, data.num_classes,
                         (args.model_kwargs, args.baseline_kwargs))
    share = check_pair(names, kwargs, data.in_chans, args.img_size, ('--model-kwargs', '--baseline-kwargs'),
                       args.unpaired)
    with usage_errors(TypeError, ValueError):  # the models and their settings
        for model in create_pair(names, kwargs, args.seeds[0]):
            resolve_split(model, args.split)
    return names, kwargs, data, share


def make_pair_factory(
        names: Sequence[str], kwargs: Sequence[Dict], seed: int) -> Callable[[], Tuple[nn.Module, nn.Module]]:
    def make() -> Tuple[nn.Module, nn.Module]:
        return tuple(m.to(memory_format=torch.channels_last) for m in create_pair(names, kwargs, seed))
    return make


def run(args: argparse.Namespace) -> int:
    require('matplotlib', 'demo')  # missing, it would fail at the plot, after the training
    names, kwargs, data, share = prepare(args)
    start = time.perf_counter()
    print(f'{names[0]} against {names[1]} on {args.dataset}: {data.describe()}, {args.epochs} epoch(s) AdamW '
          f'lr {args.lr:g}, probe at {args.split} every {args.probe_every} updates ({args.steps} step sizes '
          f'{args.step_range[0]:g}-{args.step_range[1]:g}), LR ladder {" ".join(map(str, args.ladder_lrs)) or "off"}, '
          f'{len(args.corruptions)} corruptions, seeds {" ".join(map(str, args.seeds))}; {share.note}',
          flush=True)
    seeds = []
    with torch_threads(args.threads):
        for seed in args.seeds:
            seed_data = data if seed == args.seeds[0] else load_data(args, seed)
            seeds.append(analyze_seed(names, make_pair_factory(names, kwargs, seed), seed_data, args, seed,
                                      args.corruptions))

    rows = summarize(seeds)
    reference = f'the main run (AdamW lr {args.lr:g}, cosine, {args.epochs} epoch(s))' if args.ladder_lrs else ''
    print('\n'.join(format_summary(rows, names, args.test_size, f'{names[0]} vs {names[1]} over {len(seeds)} '
                                    f'seed(s), {share.note}', reference)))
    os.makedirs(args.out_dir, exist_ok=True)
    png, json_path = os.path.join(args.out_dir, 'analysis.png'), os.path.join(args.out_dir, 'analysis.json')
    top = [draw_accuracy] + ([draw_ladder] if args.ladder_lrs else [])
    top += [draw_corruptions] if args.corruptions else []
    title = f'{names[0]} vs {names[1]}, {args.dataset}, {len(seeds)} seed(s), {share.note}'
    plot_analysis(seeds, names, png, title, top)
    if args.param_probe:
        plot_parameter_probes(seeds, names, os.path.join(args.out_dir, 'param_probes.png'), title)
    with open(json_path, 'w') as f:
        json.dump(dict(models=dict(gcp=names[0], twin=names[1]), model_kwargs=dict(gcp=kwargs[0], twin=kwargs[1]),
                       trunk=share.to_dict(), args=vars(args), summary={metric: c for metric, c in rows},
                       seeds=seeds), f, indent=1)
    print(f'figure: {png}, numbers: {json_path}, total time {time.perf_counter() - start:.0f} s')
    return 0

