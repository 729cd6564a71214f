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

import safetensors.torch
import timm
import torch
import yaml
from timm.models import split_model_name_tag
from timm.utils import ParseKwargs
from torch import nn

import timm_gcp
from .._errors import CommandError, UsageError
from ..checkpoints.layouts import MINDSPORE_PREFIX, MINDSPORE_TRAINING_STATE, RESNET_RENAMES, mindspore_key, rename_key
from ..checkpoints.mindspore import MindSporeCheckpointError, is_mindspore_checkpoint, load_mindspore_checkpoint
from ..export.folder import PROVENANCE_FILE, RUN_FILES, export_for_hub, own_weights
from ..models.gcp_resnet import DEPRECATED_NAMES, REDUCE_CONV_WEIGHT, GCPResNet
from ..models.releases import RELEASES, Release

__all__ = [
    'ConversionError', 'ConversionReport', 'TrainingRun', 'convert_checkpoint', 'read_checkpoint',
    'read_training_run', 'add_arguments', 'run',
]

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
    out_dir: Optional[Path] = None

    def load_snippet(self) -> str:
        """The `timm.create_model` call that loads the converted weights with their settings."""
        weights = (self.out_dir or Path('OUT')) / 'model.safetensors'
        args = f', {_kwargs_text(self.model_args)}' if self.model_args else ''
        return (f"timm.create_model({self.model_name!r}, pretrained=True, "
                f"pretrained_cfg_overlay=dict(file={str(weights)!r}){args})")

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
            lines.append(f'load with   {self.load_snippet()}')
            lines.append(f"            timm.create_model('local-dir:{self.out_dir}', pretrained=True)")
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


def _sniff(path: Path) -> str:
    with open(path, 'rb') as f:
        head = f.read(16)
    if head.startswith(b'PK\x03\x04') or head[:1] == b'\x80':
        return 'PyTorch'
    if len(head) >= 9 and head[8:9] == b'{':
        return 'safetensors'
    if is_mindspore_checkpoint(path):
        return 'MindSpore'
    raise ConversionError(f'{path}: not a checkpoint (neither a PyTorch, a safetensors nor a MindSpore file)')


def read_checkpoint(path: Union[str, Path]) -> Tuple[Any, str]:
    """The file's content (a dict for every supported format) and its format name."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f'{path}: no such file')
    fmt = _sniff(path)
    try:
        if fmt == 'MindSpore':
            return load_mindspore_checkpoint(path), fmt
        if fmt == 'safetensors':
            return safetensors.torch.load_file(path), fmt
        # the authors' timm training script saves its argparse.Namespace next to the weights
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location='cpu', weights_only=True), fmt
    except MindSporeCheckpointError as e:
        raise ConversionError(str(e)) from None
    except Exception as e:  # torch.load and safetensors raise many types for truncated or foreign files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConversionError(
            f'{path}: cannot read it as a {fmt} checkpoint (truncated or corrupt?): {reason}') from None


def _select_weights(
        obj: Any,
        path: Path,
        use_ema: bool,
) -> Tuple[Dict[str, Any], str, List[Tuple[str, str]]]:
    """The state dict inside a checkpoint, where it came from, and the top-level entries left out."""
    if not isinstance(obj, dict):
        raise ConversionError(f'{path}: holds a {type(obj).__name__}, not a dict of tensors')
    ema = [k for k in _EMA if isinstance(obj.get(k), dict)]
    if use_ema and not ema:
        raise ConversionError(f'{path}: --use-ema, but the checkpoint has no EMA weights ({", ".join(_EMA)})')
    keys = ema[:1] if use_ema else [k for k in _WRAPPERS if isinstance(obj.get(k), dict)]
    if keys:
        chosen = keys[0]
        label = f"'{chosen}'" + (' (EMA weights)' if use_ema else '')
        dropped = [(k, _unchosen(k, use_ema)) for k in obj if k != chosen]
        return obj[chosen], label, dropped
    return obj, 'top level', []


def _unchosen(key: str, use_ema: bool) -> str:
    if key in _EMA:
        return 'EMA weights, used with --use-ema'
    if key in _WRAPPERS and use_ema:
        return 'weights without EMA, used without --use-ema'
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class TrainingRun:
    """What a timm `train.py` checkpoint tells of its run: arguments, epoch, metric, and the run's files beside it."""
    args: Dict[str, Any]
    epoch: Optional[int] = None
    metric: Optional[float] = None
    files: Dict[str, str] = field(default_factory=dict)  # args.yaml / summary.csv of the run folder: name -> text


def read_training_run(path: Path, obj: Any) -> Optional[TrainingRun]:
    """The run a checkpoint comes from: its saved `args`, `epoch` and `metric`, and `RUN_FILES` beside it.

    timm's `CheckpointSaver` writes `model_best.pth.tar`, `last.pth.tar` and `checkpoint-N.pth.tar`
    into the run folder where `train.py` keeps `args.yaml` and `summary.csv`. None when the file
    shows no sign of a run.
    """
    files = {name: (path.parent / name).read_text(encoding='utf-8')
             for name in RUN_FILES if (path.parent / name).is_file()}
    saved = obj.get('args') if isinstance(obj, dict) else None
    args = vars(saved) if isinstance(saved, argparse.Namespace) else dict(saved) if isinstance(saved, dict) else {}
    if 'args.yaml' in files:
        args = yaml.safe_load(files['args.yaml']) or {}
    if not args and not files:
        return None
    epoch, metric = (obj.get('epoch'), obj.get('metric')) if isinstance(obj, dict) else (None, None)
    return TrainingRun(
        args=args,
        epoch=epoch if isinstance(epoch, int) else None,
        metric=float(metric) if isinstance(metric, (int, float)) else None,
        files=files,
    )


def _checkpoint_num_classes(sd: Dict[str, Any], model: nn.Module) -> Optional[int]:
    """Rows of the classifier weights in a checkpoint in timm-gcp's own layout (a train.py checkpoint)."""
    classifiers = model.pretrained_cfg.get('classifier') or ()
    for name in (classifiers,) if isinstance(classifiers, str) else classifiers:
        weight = sd.get(f'{name}.weight')
        if isinstance(weight, torch.Tensor) and weight.dim() == 2:
            return weight.shape[0]
    return None


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
            'model': run.args.get('model'), 'data': run.args.get('dataset') or run.args.get('data_dir') or None,
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

    `model_name` defaults to the architecture a timm `train.py` checkpoint names; `num_classes` and
    the run's `model_kwargs` come from the checkpoint unless given. `use_ema` defaults to how the
    authors evaluate a release tag's file (`Release.use_ema`), else False, as timm's `validate.py`.
    Only a release tag (`timm_gcp.models.releases`) keeps the authors' origin and paper in the
    export's config; the export records the source file and its sha256 in `provenance.json`, with
    the run's `args.yaml` / `summary.csv` when they sit beside the checkpoint.

    Raises ConversionError, naming the file, for anything that cannot be read, mapped or placed;
    nothing is written then.
    """
    path = Path(src)
    model_kwargs = dict(model_kwargs or {})
    if out_dir is not None and Path(out_dir).exists() and not overwrite:
        raise ConversionError(f'{out_dir}: already exists (pass --overwrite to replace it)')
    obj, fmt = read_checkpoint(path)
    run = read_training_run(path, obj)
    if model_name is None:
        model_name = obj.get('arch') if isinstance(obj, dict) and isinstance(obj.get('arch'), str) else None
        if model_name is None:
            raise ConversionError(f'{path}: names no architecture (no \'arch\' entry): pass --model')
    model_name = DEPRECATED_NAMES.get(model_name, model_name)  # the numerics check needs the current name
    release = RELEASES.get(model_name)
    if release is not None and run is not None and run.files:
        raise ConversionError(
            f'{path}: a training run ({", ".join(sorted(run.files))} beside it), not the authors\' file of '
            f'{model_name}: convert it with --model {split_model_name_tag(model_name)[0]}')
    if use_ema is None:
        use_ema = release is not None and release.use_ema
    sd, weights_from, dropped = _select_weights(obj, path, use_ema)
    if not any(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConversionError(f'{path}: holds no tensors under {weights_from}: not a model checkpoint')
    if release is None and run is not None and isinstance(run.args.get('model_kwargs'), dict):
        model_kwargs = {**run.args['model_kwargs'], **model_kwargs}

    try:
        probe = timm.create_model(model_name, device='meta', **model_kwargs)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ConversionError(f'--model {model_name}: {e}') from None
    _check_numerics(path, fmt, model_name)
    num_classes = _checkpoint_num_classes(sd, probe)
    if 'num_classes' not in model_kwargs and num_classes is not None and num_classes != probe.num_classes:
        model_kwargs['num_classes'] = num_classes
        probe = timm.create_model(model_name, device='meta', **model_kwargs)
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
    )
    if out_dir is not None:
        if release is None:
            own_weights(model)
        provenance = _provenance(path, fmt, weights_from, report, release, run)
        files = {PROVENANCE_FILE: json.dumps(provenance, indent=2) + '\n', **(run.files if run else {})}
        report.out_dir = Path(out_dir)
        try:
            export_for_hub(model, report.out_dir, files=files, overwrite=overwrite)
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
    if not Path(args.src).is_file():
        raise UsageError(f'{args.src}: no such file')
    if args.model is not None and not timm.is_model(args.model):
        raise UsageError(f"--model '{args.model}': no such model in timm's registry")
    out_dir = None if args.check else Path(args.out or args.model)
    report = convert_checkpoint(
        args.src, args.model, out_dir, model_kwargs=args.model_kwargs, use_ema=args.use_ema, overwrite=args.overwrite)
    print(report.format(verbose=args.verbose))
    return 0
