"""`timm-gcp convert`: an authors' checkpoint to a timm-gcp export (model.safetensors + config.json).

Sources (docs/checkpoints.md; key layouts in `timm_gcp.convert.layouts`):
    * fast-MPN-COV: plain state dicts and its training checkpoints (under 'state_dict');
    * the CVPR'20 GCP ResNets and the DropCov ResNets: `module.`-prefixed, under 'state_dict';
    * the DropCov-ViT timm-style checkpoints: 'state_dict_ema' preferred over 'state_dict';
    * the TPAMI'23 MindSpore `.ckpt` files (read by `timm_gcp.convert.mindspore`), into the `ms_`
      architectures that have their numerics: MindSpore names, a 1001-way fc whose unused last row
      is dropped, Conv1d kernels stored 4-D.

The model family's own `checkpoint_filter_fn` places the tensors and checks their shapes; the
converter then loads them strictly, so every tensor of the model is accounted for. Nothing is
written unless all of that succeeds, and the output folder appears whole or not at all.
"""
import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import safetensors.torch
import timm
import torch
from timm.models import split_model_name_tag
from timm.utils import ParseKwargs
from torch import nn

from ..hub.export import export_for_hub
from ..models.gcp_resnet import DEPRECATED_NAMES, MINDSPORE_PREFIX, REDUCE_CONV_WEIGHT, GCPResNet
from .layouts import MINDSPORE_TRAINING_STATE, RESNET_RENAMES, mindspore_key, rename_key
from .mindspore import MindSporeCheckpointError, is_mindspore_checkpoint, load_mindspore_checkpoint

__all__ = ['ConversionError', 'ConversionReport', 'convert_checkpoint', 'read_checkpoint', 'add_arguments', 'run']

_WRAPPERS = ('state_dict', 'model', 'module')


class ConversionError(ValueError):
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
        if self.out_dir is not None:
            lines.append(f'wrote       {self.out_dir / "model.safetensors"}, {self.out_dir / "config.json"}')
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
        prefer_ema: bool,
) -> Tuple[Dict[str, Any], str, List[Tuple[str, str]]]:
    """The state dict inside a checkpoint, where it came from, and the top-level entries left out."""
    if not isinstance(obj, dict):
        raise ConversionError(f'{path}: holds a {type(obj).__name__}, not a dict of tensors')
    keys = [k for k in ('state_dict_ema', 'model_ema') if prefer_ema and isinstance(obj.get(k), dict)]
    keys += [k for k in _WRAPPERS if isinstance(obj.get(k), dict)]
    if keys:
        chosen = keys[0]
        label = f"'{chosen}'" + (' (EMA weights)' if 'ema' in chosen else '')
        dropped = [(k, _unchosen(k, chosen)) for k in obj if k != chosen]
        return obj[chosen], label, dropped
    return obj, 'top level', []


def _unchosen(key: str, chosen: str) -> str:
    if key in ('state_dict_ema', 'model_ema'):
        return 'EMA weights, not used with --no-ema'
    if key in _WRAPPERS and 'ema' in chosen:
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
        if rename_key(name, RESNET_RENAMES) == REDUCE_CONV_WEIGHT and isinstance(value, torch.Tensor) and value.dim() == 4:
            return value.shape[0], f'{name} {tuple(value.shape)}'
    return None


def _check_reduction(path: Path, sd: Dict[str, Any], model_name: str, model: nn.Module, explicit: bool) -> str:
    found = _reduction_dim(sd)
    if found is None or not isinstance(model, GCPResNet):
        return ''
    dim, where = found
    model_dim = model.head.global_pool.reduce_dim
    if dim != model_dim and not explicit:
        arch = model_name.split('.')[0]
        base = arch[:-len('_d256')] if arch.endswith('_d256') else arch
        suggest = [n for n in (base, f'{base}_d256') if n in timm.list_models(module='gcp_resnet')
                   and timm.create_model(n, device='meta').head.global_pool.reduce_dim == dim]
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


def convert_checkpoint(
        src: Union[str, Path],
        model_name: str,
        out_dir: Optional[Union[str, Path]] = None,
        model_kwargs: Optional[Dict[str, Any]] = None,
        prefer_ema: bool = True,
        overwrite: bool = False,
) -> ConversionReport:
    """Convert `src` into a `model_name` (`arch` or `arch.tag`) export in `out_dir` (None: check only).

    Raises ConversionError, naming the file, for anything that cannot be read, mapped or placed;
    nothing is written then.
    """
    path = Path(src)
    model_name = DEPRECATED_NAMES.get(model_name, model_name)  # the numerics check needs the current name
    model_kwargs = dict(model_kwargs or {})
    if out_dir is not None and Path(out_dir).exists() and not overwrite:
        raise ConversionError(f'{out_dir}: already exists (pass --overwrite to replace it)')
    obj, fmt = read_checkpoint(path)
    sd, weights_from, dropped = _select_weights(obj, path, prefer_ema)
    if not any(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConversionError(f'{path}: holds no tensors under {weights_from}: not a model checkpoint')

    try:
        probe = timm.create_model(model_name, device='meta', **model_kwargs)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ConversionError(f'--model {model_name}: {e}') from None
    _check_numerics(path, fmt, model_name)
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
    )
    if out_dir is not None:
        report.out_dir = Path(out_dir)
        try:
            export_for_hub(model, report.out_dir, overwrite=overwrite)
        except FileExistsError as e:
            raise ConversionError(f'{e} (pass --overwrite to replace it)') from None
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        'src', help='original checkpoint: PyTorch (.pth, .pth.tar, .bin), safetensors or MindSpore (.ckpt)')
    parser.add_argument('--model', required=True,
                        help='registered architecture, with the tag the weights belong to '
                             "(e.g. 'ms_resnet50_isqrt.tpami_in1k')")
    parser.add_argument('--out', default=None,
                        help='output folder for model.safetensors and config.json (default: ./<model>)')
    parser.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs,
                        help='extra model settings, key=value (e.g. gcp_dim=256)')
    parser.add_argument('--no-ema', action='store_true', help="use 'state_dict' even if the file has EMA weights")
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output folder')
    parser.add_argument('--check', action='store_true', help='map and check only, write nothing')
    parser.add_argument('--verbose', action='store_true', help='list every tensor in the report')


def run(args: argparse.Namespace) -> int:
    out_dir = None if args.check else Path(args.out or args.model)
    try:
        report = convert_checkpoint(
            args.src, args.model, out_dir, model_kwargs=args.model_kwargs, prefer_ema=not args.no_ema,
            overwrite=args.overwrite)
    except ConversionError as e:
        print(f'timm-gcp convert: error: {e}', file=sys.stderr)
        return 1
    print(report.format(verbose=args.verbose))
    return 0
