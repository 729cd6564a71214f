"""`timm-gcp convert`: a checkpoint to a timm-gcp export (model.safetensors, config.json, provenance.json).

Sources (docs/checkpoints.md; key layouts in `timm_gcp.checkpoints.layouts`):
    * fast-MPN-COV: plain state dicts and its training checkpoints (under 'state_dict');
    * the CVPR'20 GCP ResNets and the DropCov ResNets: `module.`-prefixed, under 'state_dict';
    * the DropCov-ViT timm-style checkpoints: 'state_dict_ema' (how the authors evaluate) or 'state_dict';
    * timm `train.py` checkpoints of any timm-gcp model (`model_best.pth.tar`, `last.pth.tar`,
      `checkpoint-N.pth.tar`): the architecture, `num_classes` and `model_kwargs` come from the
      checkpoint, and the run's `args.yaml` / `summary.csv` are copied into the export;
    * the TPAMI'23 MindSpore `.ckpt` files (read by `timm_gcp.checkpoints.mindspore`), into the `ms_`
      architectures that have their numerics: MindSpore names, a 1001-way fc whose unused last row
      is dropped, Conv1d kernels stored 4-D.

The model family's own `checkpoint_filter_fn` places the tensors and checks their shapes; the
converter then loads them strictly, so every tensor of the model is accounted for. Nothing is
written unless all of that succeeds, and the output folder appears whole or not at all.
"""
import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import timm
import torch
from timm.data import resolve_input_data_config
from timm.models import get_model_input_config, split_model_name_tag
from timm.utils import ParseKwargs
from torch import nn

import timm_gcp
from .._errors import CommandError, UsageError, check_model_kwargs, path_problem, usage_errors
from ..checkpoints.layouts import (
    MINDSPORE_PREFIX, MINDSPORE_TRAINING_STATE, RESNET_RENAMES, is_vit_authors_layout, mindspore_key, rename_key,
)
from ..checkpoints.train_run import (
    CheckpointError, TrainingRun, data_dir, read_checkpoint, read_training_run, trained_arch, trained_model_kwargs,
)
from ..export.folder import PROVENANCE_FILE, check_out_dir, export_for_hub, own_weights
from ..models.gcp_resnet import DEPRECATED_NAMES, REDUCE_CONV_WEIGHT, GCPResNet
from ..models.releases import RELEASES, Release

__all__ = ['ConversionError', 'ConversionReport', 'convert_checkpoint', 'add_arguments', 'run']

_WRAPPERS = ('state_dict', 'model', 'module')
_EMA = ('state_dict_ema', 'model_ema')


class ConversionError(CommandError, ValueError):
    """A source that cannot be converted; the message names the file and the problem."""


@dataclass
class ConversionReport:
    """What a conversion did: the source, the model built, and where every tensor went."""
    source: Path
    source_format: str
    weights_from: str
    model_name: str
    pretrained_tag: Optional[str]
    model_args: Dict[str, Any]
    num_params: int
    reduction: str = ''
    mapped: List[Tuple[str, str]] = field(default_factory=list)
    dropped: List[Tuple[str, str]] = field(default_factory=list)
    filled: List[str] = field(default_factory=list)
    authors_release: Optional[str] = None  # the release tag whose authors' file this is
    run_files: List[str] = field(default_factory=list)  # the training run's files beside the checkpoint
    data_config: Dict[str, Any] = field(default_factory=dict)  # the run's preprocessing, into the pretrained cfg
    label_names: Tuple[str, ...] = ()  # the run's class names, from its ImageFolder
    registered_cfg_fits: bool = False  # the registered pretrained cfg of `model_name` describes the export
    out_dir: Optional[Path] = None

    def load_snippets(self) -> List[str]:
        """The `timm.create_model` calls that load the export as converted: classifier, settings, preprocessing.

        `local-dir:` reads them all from config.json. The registered name with the weights file as an
        overlay keeps the registered pretrained cfg, so it is printed only where that cfg is the export's
        (`registered_cfg_fits`): timm drops a classifier whose size differs from the cfg's `num_classes`,
        and preprocesses at the cfg's input size, crop and interpolation.
        """
        out = self.out_dir or Path('OUT')
        snippets = [f"timm.create_model('local-dir:{out}', pretrained=True)"]
        if self.registered_cfg_fits:
            args = f', {_kwargs_text(self.model_args)}' if self.model_args else ''
            snippets.append(f"timm.create_model({self.model_name!r}, pretrained=True, "
                            f"pretrained_cfg_overlay=dict(file={str(out / 'model.safetensors')!r}){args})")
        return snippets

    def format(self, verbose: bool = False) -> str:
        """Human-readable report; `verbose` lists every tensor instead of rename patterns."""
        lines = [
            f'source      {self.source} ({self.source_format})',
            f'weights     {self.weights_from}',
            f'model       {self.model_name} (pretrained cfg tag: {self.pretrained_tag or "none"}), '
            f'{self.num_params / 1e6:.2f} M parameters',
        ]
        if self.model_args:
            lines.append(f'settings    {_kwargs_text(self.model_args)}')
        if self.reduction:
            lines.append(f'reduction   {self.reduction}')
        if self.data_config or self.label_names:
            classes = f'{len(self.label_names)} class names of its data folder' if self.label_names else ''
            lines.append('data        from the training run: '
                         + ', '.join(filter(None, [_kwargs_text(self.data_config), classes])))
        lines.append(f'mapped      {len(self.mapped)} tensors')
        if verbose:
            lines += [f'              {src} -> {dst}' for src, dst in self.mapped]
        else:
            lines += [f'              {src} -> {dst}' + (f' ({n})' if n > 1 else '')
                      for (src, dst), n in _grouped(self.mapped)]
        lines.append(f'dropped     {len(self.dropped)}' + ('' if self.dropped else ' (none)'))
        if verbose:
            lines += [f'              {name}: {why}' for name, why in self.dropped]
        else:
            lines += [f'              {name}: {why}' + (f' ({n})' if n > 1 else '')
                      for (name, why), n in _grouped(self.dropped)]
        if self.filled:
            lines.append(f'filled      {len(self.filled)} BatchNorm num_batches_tracked counters the source lacks')
        lines.append('not placed  none')
        if self.authors_release:
            lines.append(f"origin      the authors' weights of {self.authors_release}")
        else:
            lines.append("origin      not an authors' release: the export keeps no paper or origin of the authors")
        if self.run_files:
            lines.append(f'run         {", ".join(self.run_files)} (copied into the export)')
        if self.out_dir is not None:
            lines.append(f'wrote       {self.out_dir}: model.safetensors, config.json, {PROVENANCE_FILE}'
                         + ''.join(f', {name}' for name in self.run_files))
            snippets = self.load_snippets()
            lines.append(f'load with   {snippets[0]}')
            lines += [f'            {snippet}' for snippet in snippets[1:]]
        return '\n'.join(lines)


def _kwargs_text(kwargs: Dict[str, Any]) -> str:
    return ', '.join(f'{k}={v!r}' for k, v in kwargs.items())


def _pattern(name: str) -> str:
    return re.sub(r'\d+', '*', name)


def _grouped(pairs: List[Tuple[str, str]]) -> List[Tuple[Tuple[str, str], int]]:
    """Pairs of names grouped by their pattern (digits as '*'); a group of one keeps its real names."""
    groups: Dict[Tuple[str, str], List[Tuple[str, str]]] = {}
    for a, b in pairs:
        groups.setdefault((_pattern(a), _pattern(b)), []).append((a, b))
    return [(members[0] if len(members) == 1 else key, len(members)) for key, members in groups.items()]


def _ema_evaluated(obj: Any, release: Optional[Release]) -> str:
    """Who evaluates the EMA weights of this checkpoint, when they are what its authors report; '' otherwise.

    A release tag says so (`Release.use_ema`); the SoT / DropCov-ViT authors' layout says so for any of
    their files (docs/checkpoints.md, "SoT and DropCov-ViT checkpoints"). Other checkpoints, a
    `train.py` run of a timm-gcp model included, default to 'state_dict' as timm's validate.py does.
    """
    if release is not None:
        return f'the authors of {release.name} evaluate them' if release.use_ema else ''
    ema = next((obj[k] for k in _EMA if isinstance(obj, dict) and isinstance(obj.get(k), dict)), None)
    return 'the SoT / DropCov-ViT authors evaluate them' if ema and is_vit_authors_layout(ema) else ''


def _select_weights(
        obj: Any,
        path: Path,
        use_ema: bool,
        evaluated_by: str = '',
) -> Tuple[Dict[str, Any], str, List[Tuple[str, str]]]:
    """The state dict inside a checkpoint, where it came from, and the top-level entries left out.

    `evaluated_by`: who evaluates the EMA weights (`_ema_evaluated`), named in the label when they are taken.
    """
    if not isinstance(obj, dict):
        raise ConversionError(f'{path}: holds a {type(obj).__name__}, not a dict of tensors')
    ema = [k for k in _EMA if isinstance(obj.get(k), dict)]
    if use_ema and not ema:
        raise ConversionError(f'{path}: --use-ema, but the checkpoint has no EMA weights ({", ".join(_EMA)})')
    keys = ema[:1] if use_ema else [k for k in _WRAPPERS if isinstance(obj.get(k), dict)]
    if keys:
        chosen = keys[0]
        why = f": {evaluated_by}; --no-ema takes 'state_dict'" if evaluated_by else ''
        label = f"'{chosen}'" + (f' (EMA weights{why})' if use_ema else '')
        dropped = [(k, _unchosen(k, use_ema)) for k in obj if k != chosen]
        return obj[chosen], label, dropped
    return obj, 'top level', []


def _unchosen(key: str, use_ema: bool) -> str:
    if key in _EMA:
        return 'EMA weights, used with --use-ema'
    if key in _WRAPPERS and use_ema:
        return 'weights without EMA, used with --no-ema'
    return 'training state'


def _from_mindspore(
        sd: Dict[str, Any],
        model: nn.Module,
) -> Tuple[Dict[str, Any], Dict[int, str], List[Tuple[str, str]]]:
    """MindSpore names and layouts -> the original PyTorch ones; identity of each tensor -> its MindSpore name."""
    out, origin, dropped = {}, {}, []
    num_classes = getattr(model, 'num_classes', 0)
    for name, value in sd.items():
        if MINDSPORE_TRAINING_STATE.match(name):
            dropped.append((name, 'optimizer / training state'))
            continue
        if not isinstance(value, torch.Tensor):
            dropped.append((name, 'not a tensor'))
            continue
        new = mindspore_key(name)
        if new in ('fc.weight', 'fc.bias') and value.shape[0] == num_classes + 1:
            value = value[:num_classes].contiguous()
            dropped.append((f'{name}[{num_classes}]', 'the unused 1001st class (labels are 0..999)'))
        elif new == 'eca_layer.conv.weight' and value.dim() == 4:
            value = value.reshape(value.shape[0], value.shape[1], -1)  # MindSpore stores Conv1d kernels 4-D
        out[new] = value
        origin[id(value)] = name
    return out, origin, dropped


def _reduction_dim(sd: Dict[str, Any]) -> Optional[Tuple[int, str]]:
    for name, value in sd.items():
        if (rename_key(name, RESNET_RENAMES) == REDUCE_CONV_WEIGHT and isinstance(value, torch.Tensor)
                and value.dim() == 4):
            return value.shape[0], f'{name} {tuple(value.shape)}'
    return None


def _check_reduction(path: Path, sd: Dict[str, Any], model_name: str, model: nn.Module, explicit: bool) -> str:
    found = _reduction_dim(sd)
    if found is None or not isinstance(model, GCPResNet):
        return ''
    dim, where = found
    model_dim = model.head.global_pool.dim
    if dim != model_dim and not explicit:
        arch = model_name.split('.')[0]
        base = arch[:-len('_d256')] if arch.endswith('_d256') else arch
        suggest = [n for n in (base, f'{base}_d256') if n in timm.list_models(module='gcp_resnet')
                   and timm.create_model(n, device='meta').head.global_pool.dim == dim]
        hint = f'--model {suggest[0]}' if suggest else f'--model-kwargs gcp_dim={dim}'
        raise ConversionError(
            f'{path}: the checkpoint reduces to d={dim} ({where}) but {arch} has d={model_dim}: '
            f'convert with {hint}')
    return f'd={dim} ({where}), {dim * (dim + 1) // 2} covariance features'


def _filter_fn(model: nn.Module):
    module = sys.modules[type(model).__module__]
    return getattr(module, 'checkpoint_filter_fn', None)


def _place(
        path: Path,
        sd: Dict[str, Any],
        origin: Dict[int, str],
        model: nn.Module,
) -> Tuple[List[Tuple[str, str]], List[str]]:
    """Run the family's filter, then load strictly; returns (source, target) names and the counters filled in."""
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    for name, value in tensors.items():
        origin.setdefault(id(value), name)
    filter_fn = _filter_fn(model)
    try:
        out = filter_fn(tensors, model) if filter_fn is not None else dict(tensors)
    except ValueError as e:
        raise ConversionError(f'{path}: does not fit {type(model).__name__}: {e}') from None
    # a filter may complete a checkpoint with the model's own tensors (a fixed position table is fine,
    # fresh parameters are not: the converted weights would not be the published ones)
    own_params = {p.data_ptr() for p in model.parameters() if p.numel()}
    fresh = [k for k, v in out.items() if v.numel() and v.data_ptr() in own_params]
    if fresh:
        raise ConversionError(f'{path}: the checkpoint has no weights for {", ".join(fresh)}')
    model_sd = model.state_dict()
    filled = [k for k in model_sd if k not in out and k.endswith('num_batches_tracked')]
    out.update({k: model_sd[k] for k in filled})
    try:
        model.load_state_dict(out, strict=True)
    except RuntimeError as e:
        raise ConversionError(f'{path}: does not fit {type(model).__name__}: {e}') from None
    mapped = [(origin.get(id(v), "(the model's own buffer)"), k) for k, v in out.items() if k not in filled]
    return mapped, filled


def _check_numerics(path: Path, fmt: str, model_name: str) -> None:
    """MindSpore weights go into the `ms_` architectures (their numerics), other weights into the others."""
    arch = split_model_name_tag(model_name)[0]
    is_ms_arch = arch.startswith(MINDSPORE_PREFIX)
    if fmt == 'MindSpore' and not is_ms_arch:
        ms_arch = MINDSPORE_PREFIX + arch
        hint = ms_arch if timm.is_model(ms_arch) else f"one of {', '.join(timm.list_models(f'{MINDSPORE_PREFIX}*'))}"
        raise ConversionError(
            f'{path}: a MindSpore checkpoint needs a model with the MindSpore numerics (padding, BatchNorm eps), '
            f'not {arch}: convert with --model {hint}')
    if fmt != 'MindSpore' and is_ms_arch:
        raise ConversionError(
            f'{path}: a {fmt} checkpoint, but {arch} has the MindSpore numerics (padding, BatchNorm eps): '
            f'convert with --model {arch[len(MINDSPORE_PREFIX):]}')


def _registered_cfg_fits(model: nn.Module) -> bool:
    """Whether the model's registered pretrained cfg has its classes and input channels (before `own_weights`)."""
    cfg = model.pretrained_cfg
    return (cfg.get('num_classes') == model.num_classes
            and cfg.get('input_size', (3,))[0] == get_model_input_config(model)['input_size'][0])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _provenance(path: Path, fmt: str, weights_from: str, report: 'ConversionReport', release: Optional[Release],
                run: Optional[TrainingRun]) -> Dict[str, Any]:
    return {
        'source': {'file': path.name, 'sha256': _sha256(path), 'bytes': path.stat().st_size, 'format': fmt,
                   'weights': weights_from},
        'model': report.model_name,
        'model_args': report.model_args,
        'authors_release': release.name if release is not None else None,
        'training_run': None if run is None else {
            'epoch': run.epoch, 'metric': run.metric, 'files': sorted(run.files),
            'model': run.args.get('model'), 'data': run.args.get('dataset') or data_dir(run.args),
        },
        'converted_by': f'timm-gcp {timm_gcp.__version__}',
    }


def convert_checkpoint(
        src: Union[str, Path],
        model_name: Optional[str] = None,
        out_dir: Optional[Union[str, Path]] = None,
        model_kwargs: Optional[Dict[str, Any]] = None,
        use_ema: Optional[bool] = None,
        overwrite: bool = False,
) -> ConversionReport:
    """Convert `src` into a `model_name` (`arch` or `arch.tag`) export in `out_dir` (None: check only).

    `model_name` defaults to the architecture a timm `train.py` checkpoint names, and must match it
    when given. `num_classes` and the run's settings (`TrainingRun.model_kwargs`) come from the
    checkpoint unless given; the run's preprocessing (input size, crop, interpolation, mean / std)
    and the class names of its ImageFolder go into the export's pretrained cfg. `use_ema` defaults
    to taking the EMA weights where the authors evaluate them (`Release.use_ema`, the SoT /
    DropCov-ViT authors' layout), else False, as timm's `validate.py`.
    Only a release tag (`timm_gcp.models.releases`) keeps the authors' origin and paper in the
    export's config; the export records the source file and its sha256 in `provenance.json`, with
    the run's `args.yaml` / `summary.csv` when they sit beside the checkpoint.

    Raises ConversionError, naming the file, for anything that cannot be read, mapped or placed;
    nothing is written then.
    """
    path = Path(src)
    if out_dir is not None and Path(out_dir).exists() and not overwrite:
        raise ConversionError(f'{out_dir}: already exists (pass --overwrite to replace it)')
    try:
        obj, fmt = read_checkpoint(path)
        run = read_training_run(path, obj)
        name = model_name or trained_arch(path, obj, None)
        name = DEPRECATED_NAMES.get(name, name)  # the numerics check needs the current name
        release = RELEASES.get(name)
        if release is not None and run is not None and run.files:  # the real problem, before any 'arch' mismatch
            raise ConversionError(
                f'{path}: a training run ({", ".join(sorted(run.files))} beside it), not the authors\' file of '
                f'{name}: convert it with --model {split_model_name_tag(name)[0]}')
        trained_arch(path, obj, model_name)
    except CheckpointError as e:
        raise ConversionError(str(e)) from None
    model_name = name
    evaluated_by = _ema_evaluated(obj, release)
    if use_ema is None:
        use_ema = bool(evaluated_by)
    sd, weights_from, dropped = _select_weights(obj, path, use_ema, evaluated_by)
    if not any(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConversionError(f'{path}: holds no tensors under {weights_from}: not a model checkpoint')
    own_run = run if release is None else None  # a release's settings and preprocessing are its registered ones

    try:
        model_kwargs = trained_model_kwargs(model_name, sd, own_run, dict(model_kwargs or {}))
        probe = timm.create_model(model_name, device='meta', **model_kwargs)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ConversionError(f'--model {model_name}: {e}') from None
    _check_numerics(path, fmt, model_name)
    data_config = own_run.data_config() if own_run is not None else {}
    try:
        resolve_input_data_config(probe, args=data_config)
    except ValueError as e:
        raise ConversionError(f'{path}: the run\'s preprocessing ({_kwargs_text(data_config)}) does not fit '
                              f'{model_name} with {_kwargs_text(model_kwargs) or "its defaults"}: {e}') from None
    label_names = (own_run.label_names() if own_run is not None else None) or ()
    if len(label_names) != probe.num_classes:
        label_names = ()  # a class map or a folder that changed since: the names would not match the classifier
    if fmt == 'MindSpore':
        sd, origin, ms_dropped = _from_mindspore(sd, probe)
        dropped += ms_dropped
    else:
        origin = {}
        dropped += [(k, 'not a tensor') for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    reduction = _check_reduction(path, sd, model_name, probe, 'gcp_dim' in model_kwargs)

    model = timm.create_model(model_name, **model_kwargs).eval()
    mapped, filled = _place(path, sd, origin, model)
    report = ConversionReport(
        source=path,
        source_format=f'{fmt} checkpoint, {len(obj)} top-level entries',
        weights_from=weights_from,
        model_name=model_name,
        pretrained_tag=model.pretrained_cfg.get('tag'),
        model_args=model_kwargs,
        num_params=sum(p.numel() for p in model.parameters()),
        reduction=reduction,
        mapped=mapped,
        dropped=dropped,
        filled=filled,
        authors_release=release.name if release is not None else None,
        run_files=sorted(run.files) if run is not None else [],
        data_config=data_config,
        label_names=label_names,
        registered_cfg_fits=not data_config and not label_names and _registered_cfg_fits(model),
    )
    if out_dir is not None:
        if release is None:
            own_weights(model)
        provenance = _provenance(path, fmt, weights_from, report, release, run)
        files = {PROVENANCE_FILE: json.dumps(provenance, indent=2) + '\n', **(run.files if run else {})}
        report.out_dir = Path(out_dir)
        try:
            export_for_hub(model, report.out_dir, files=files, overwrite=overwrite, data_config=data_config,
                           label_names=label_names)
        except FileExistsError as e:
            raise ConversionError(f'{e} (pass --overwrite to replace it)') from None
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        'src', help='checkpoint: the authors\' PyTorch (.pth, .pth.tar, .bin), safetensors or MindSpore (.ckpt) '
                    'file, or a timm train.py checkpoint (model_best.pth.tar, last.pth.tar, checkpoint-N.pth.tar)')
    parser.add_argument('--model', default=None,
                        help='registered architecture, with the tag of the authors\' weights '
                             "(e.g. 'ms_resnet50_isqrt.tpami_in1k'); default: the train.py checkpoint's arch")
    parser.add_argument('--out', default=None,
                        help='output folder for model.safetensors, config.json and provenance.json '
                             '(default: ./<model>)')
    parser.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs,
                        help='extra model settings, key=value (e.g. gcp_dim=256)')
    ema = parser.add_mutually_exclusive_group()
    ema.add_argument('--use-ema', action='store_true', default=None,
                     help="take the EMA weights ('state_dict_ema'); default for the tags whose authors evaluate them")
    ema.add_argument('--no-ema', dest='use_ema', action='store_false', help="take 'state_dict' even for those tags")
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output folder')
    parser.add_argument('--check', action='store_true', help='map and check only, write nothing')
    parser.add_argument('--verbose', action='store_true', help='list every tensor in the report')


def run(args: argparse.Namespace) -> int:
    if not args.check and args.out is None and args.model is None:
        raise UsageError('pass --out (its default is ./<model>, and no --model is given)')
    problem = path_problem(args.src)
    if problem:
        raise UsageError(f'{args.src}: {problem}')
    if args.model is not None and not timm.is_model(args.model):
        raise UsageError(f"--model '{args.model}': no such model in timm's registry")
    check_model_kwargs(args.model_kwargs)
    out_dir = None if args.check else Path(args.out or args.model)
    if out_dir is not None:
        with usage_errors(NotADirectoryError, prefix='--out '):
            check_out_dir(out_dir)
    report = convert_checkpoint(
        args.src, args.model, out_dir, model_kwargs=args.model_kwargs, use_ema=args.use_ema, overwrite=args.overwrite)
    print(report.format(verbose=args.verbose))
    return 0
