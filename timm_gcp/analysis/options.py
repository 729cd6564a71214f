"""The options `timm-gcp demo` and `timm-gcp analyze` share, declared once; each command gives its defaults."""
import argparse
import contextlib
import os
from typing import Any, Dict, Iterator, Optional, Sequence

import torch

from .._errors import UsageError, path_problem, usage_errors
from ..measure import MetaBuildError, MetaInputError, build_on_meta, run_on_meta
from ..training.loop import TrunkShare, trunk_share
from .landscape import STEM, STEP_RANGES, default_step_range, step_sizes

__all__ = ['add_common_arguments', 'add_run_arguments', 'check_common_args', 'check_pair', 'check_run_args',
           'torch_threads']


def add_common_arguments(
        parser: argparse.ArgumentParser, epochs: int, train_size: int, test_size: int, probe_every: int, out_dir: str,
) -> None:
    """The pair, its training, the data folder, the landscape probe and the LR ladder."""
    parser.add_argument('--model', default='resnet18_isqrt', metavar='NAME',
                        help='the GCP model, a timm model name (default: %(default)s)')
    parser.add_argument('--baseline', default=None, metavar='NAME',
                        help="its twin, a timm model name (default: timm's plain model of the GCP model's trunk, "
                             'e.g. resnet18)')
    parser.add_argument('--unpaired', action='store_true',
                        help="compare a pair whose twin does not start from the GCP model's trunk (refused "
                             'otherwise); the output says unpaired')
    parser.add_argument('--width', type=float, default=0.25,
                        help="ResNets only: multiplier of the stages' channels 64-512 (default: %(default)s)")
    parser.add_argument('--gcp-dim', type=int, default=32,
                        help="GCP ResNets only: reduction channels; 0: no reduction, the covariance of the trunk's "
                             'channels themselves (default: %(default)s)')
    parser.add_argument('--epochs', type=int, default=epochs, help='epochs of the main run (default: %(default)s)')
    parser.add_argument('--lr', type=float, default=2e-3,
                        help='AdamW peak learning rate of the main run (default: %(default)s)')
    parser.add_argument('--batch-size', type=int, default=64, help='batch size (default: %(default)s)')
    parser.add_argument('--img-size', type=int, default=56, metavar='PX', help='input size (default: %(default)s)')
    parser.add_argument('--train-size', type=int, default=train_size, metavar='N',
                        help='training images drawn from the data set (default: %(default)s)')
    parser.add_argument('--test-size', type=int, default=test_size, metavar='N',
                        help='test images drawn from the data set (default: %(default)s)')
    add_run_arguments(parser, out_dir)

    probe = parser.add_argument_group('landscape probe')
    probe.add_argument('--split', default=STEM, metavar='POINT',
                       help="where to split the network: 'stem' (the first stage's input, as the original) or a "
                            "stage of the model's feature_info, e.g. layer2 (default: stem)")
    probe.add_argument('--probe-every', type=int, default=probe_every, metavar='K',
                       help='probe every K updates (default: %(default)s)')
    probe.add_argument('--step-range', type=float, nargs=2, default=None, metavar=('START', 'STOP'),
                       help="step sizes along the activation gradient (default: the original's for the trunk: "
                            f"{' '.join(map(str, STEP_RANGES['mobilenetv2']))} for MobileNetV2, else "
                            f"{' '.join(map(str, STEP_RANGES['resnet']))})")
    probe.add_argument('--steps', type=int, default=50, help='number of step sizes (default: 50, as the original)')
    probe.add_argument('--param-probe', action='store_true',
                       help='also move the weights along their gradient (reported separately)')
    probe.add_argument('--param-step-range', type=float, nargs=2, default=(0.01, 2.0), metavar=('START', 'STOP'),
                       help='step sizes of the parameter-space probe (default: 0.01 2)')

    ladder = parser.add_argument_group('learning-rate ladder')
    ladder.add_argument('--ladder-lrs', type=float, nargs='*', default=[0.05, 0.2, 0.8], metavar='LR',
                        help='peak learning rates of the ladder, whose reference rung is the main run; none skips '
                             'it (default: 0.05 0.2 0.8)')
    ladder.add_argument('--ladder-epochs', type=int, default=1,
                        help='epochs per rung, the learning rate decaying to zero over them (default: %(default)s)')
    ladder.add_argument('--ladder-opt', default='sgd', help='timm optimizer of the ladder (default: sgd, momentum 0.9)')


def add_run_arguments(parser: argparse.ArgumentParser, out_dir: str) -> None:
    """Threads, the data folder and the output folder (`timm-gcp probe` shares them too)."""
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (default: %(default)s)')
    parser.add_argument('--data-dir', default=None, metavar='DIR',
                        help="where the data set is; for Fashion-MNIST the folder of its idx files (default: "
                             "Debian's /usr/share/datasets/fashion-mnist, else torchvision's download)")
    parser.add_argument('--download-dir', default=None, metavar='DIR',
                        help='where torchvision downloads Fashion-MNIST if needed (default: ~/.cache/timm_gcp)')
    parser.add_argument('--out-dir', default=out_dir, metavar='DIR',
                        help='where the figures and the numbers (JSON) go (default: %(default)s)')


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` torch CPU threads (--threads), the number before restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_run_args(args: argparse.Namespace) -> None:
    """UsageError for a --data-dir that is no folder or an --out-dir that is a file (made at the end, after the
    training, if missing)."""
    problem = path_problem(args.data_dir, 'folder') if args.data_dir is not None else None
    if problem:
        raise UsageError(f"--data-dir '{args.data_dir}': {problem}")
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        raise UsageError(f"--out-dir '{args.out_dir}': {path_problem(args.out_dir, 'folder')}")


def check_common_args(args: argparse.Namespace, arch: str) -> None:
    """UsageError naming the first bad option of those `add_common_arguments` declares; an unset --step-range
    becomes the original's for a trunk of timm architecture `arch`."""
    if args.step_range is None:
        args.step_range = default_step_range(arch)
    for name in ('epochs', 'train_size', 'test_size', 'img_size', 'batch_size', 'threads', 'probe_every',
                 'ladder_epochs'):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    with usage_errors(ValueError):
        step_sizes(*args.step_range, args.steps)
        if args.param_probe:
            step_sizes(*args.param_step_range, args.steps)
    if not args.lr > 0 or not all(lr > 0 for lr in args.ladder_lrs):
        raise UsageError('--lr and --ladder-lrs must be positive')
    if not args.width > 0:
        raise UsageError('--width must be positive')
    if args.gcp_dim < 0 or args.gcp_dim == 1:
        raise UsageError(f'--gcp-dim must be 0 (no reduction: the covariance of the trunk\'s channels) or at least 2, '
                         f'got {args.gcp_dim}')
    check_run_args(args)


def check_pair(
        names: Sequence[str],
        kwargs: Sequence[Dict[str, Any]],
        in_chans: int,
        img_size: int,
        kwargs_flags: Sequence[Optional[str]] = (None, None),
        unpaired: bool = False,
) -> TrunkShare:
    """UsageError naming the model (--model, --baseline) that cannot be built with its kwargs or take the input:
    the data's `in_chans` channels at `img_size` px; or naming a pair whose twin does not start from the GCP
    model's trunk (not every trunk tensor of the twin has a GCP tensor to copy), unless `unpaired`.

    Both are built and run on the meta device: no weights, no work, before any training.
    `kwargs_flags` names the option that passes each model's kwargs, for the fix of a fixed input size.
    Returns how much of the twin's trunk the pair shares.
    """
    models = []
    for name, flag, model_kwargs, kwargs_flag in zip(names, ('--model', '--baseline'), kwargs, kwargs_flags):
        if model_kwargs.get('in_chans', in_chans) != in_chans:
            raise UsageError(f"{flag} {name} is given in_chans={model_kwargs['in_chans']}, but the data has "
                             f"{in_chans} channel(s): leave in_chans out of {kwargs_flag or 'its kwargs'}")
        with usage_errors(MetaBuildError, prefix=f'{flag} {name}: '):
            model = build_on_meta(name, **model_kwargs)
        models.append(model)
        try:
            run_on_meta(model, (in_chans, img_size, img_size))
        except MetaInputError as e:
            fix = f'pass {kwargs_flag} img_size={img_size}' if kwargs_flag else f'choose another {flag[2:]}'
            raise UsageError(f"{flag} {name} cannot take the data's {in_chans}-channel images at --img-size "
                             f'{img_size}: {e}{e.hint(name, fix)}') from e
    share = trunk_share(*models)
    if not share.paired and not unpaired:
        missing = f" (the first without one: '{share.missing[0]}')" if share.missing else ''
        extra = (f", and has {len(share.extra)} trunk tensors the twin lacks (the first: '{share.extra[0]}')"
                 if share.extra else '')
        raise UsageError(
            f'--model {names[0]} and --baseline {names[1]} are not twins: the GCP model gives {share.shared} of the '
            f"twin's {share.total} trunk tensors a tensor of the same name and shape{missing}{extra}, so they would "
            f'not start from the same trunk. Choose a baseline with the same trunk (and width: its kwargs), or pass '
            f'--unpaired to compare them anyway')
    return share
