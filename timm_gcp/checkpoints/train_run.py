"""Checkpoint files as data, and what a timm `train.py` run says of the model it trained.

`read_checkpoint` reads any supported file (PyTorch, safetensors, MindSpore) into a dict. timm's
`CheckpointSaver` saves `arch`, `args` (train.py's argparse.Namespace), `epoch`, `metric`,
`state_dict` and `state_dict_ema`, and train.py keeps `args.yaml` and `summary.csv` in the run
folder beside the checkpoints. `TrainingRun` turns them into what an export of the run needs:
the `timm.create_model` settings the run built its model with, the preprocessing it validated
with, and the class names of its ImageFolder. `timm-gcp convert` and `timm-gcp export-onnx` both
read a run through this module (docs/checkpoints.md, "timm train.py checkpoints").
"""
import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import safetensors.torch
import timm
import torch
import yaml
from timm.data import create_dataset
from timm.models import split_model_name_tag
from torch import nn

from .._errors import CommandError, path_problem
from .mindspore import MindSporeCheckpointError, is_mindspore_checkpoint, load_mindspore_checkpoint

__all__ = ['DATA_ARGS', 'RUN_FILES', 'CheckpointError', 'TrainingRun', 'classifier_rows', 'data_dir', 'read_checkpoint',
           'read_training_run', 'trained_arch', 'trained_model_kwargs']

# what timm's train.py writes into a run folder beside its checkpoints; an export of a run carries them
RUN_FILES = ('args.yaml', 'summary.csv')
# train.py arguments that set the preprocessing (timm.data.resolve_data_config reads them under these names)
DATA_ARGS = ('img_size', 'input_size', 'crop_pct', 'crop_mode', 'interpolation', 'mean', 'std')


class CheckpointError(CommandError, ValueError):
    """A checkpoint file that cannot be read; the message names the file and the problem."""


def _sniff(path: Path) -> str:
    with open(path, 'rb') as f:
        head = f.read(16)
    if head.startswith(b'PK\x03\x04') or head[:1] == b'\x80':
        return 'PyTorch'
    if len(head) >= 9 and head[8:9] == b'{':
        return 'safetensors'
    if is_mindspore_checkpoint(path):
        return 'MindSpore'
    raise CheckpointError(f'{path}: not a checkpoint (neither a PyTorch, a safetensors nor a MindSpore file)')


def read_checkpoint(path: Union[str, Path]) -> Tuple[Any, str]:
    """The file's content (a dict for every supported format) and its format name."""
    path = Path(path)
    problem = path_problem(path)
    if problem:
        raise CheckpointError(f'{path}: {problem}')
    fmt = _sniff(path)
    try:
        if fmt == 'MindSpore':
            return load_mindspore_checkpoint(path), fmt
        if fmt == 'safetensors':
            return safetensors.torch.load_file(path), fmt
        # timm's CheckpointSaver saves train.py's argparse.Namespace next to the weights
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location='cpu', weights_only=True), fmt
    except MindSporeCheckpointError as e:
        raise CheckpointError(str(e)) from None
    except Exception as e:  # torch.load and safetensors raise many types for truncated or foreign files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f'{path}: cannot read it as a {fmt} checkpoint (truncated or corrupt?): {reason}') from None


def trained_arch(path: Path, obj: Any, model_name: Optional[str], argument: str = '--model',
                 optional: bool = True) -> str:
    """`model_name` checked against the architecture the checkpoint names; that architecture when None.

    timm's CheckpointSaver saves train.py's `--model` as 'arch'. A name that is no timm model (the
    authors' own scripts name theirs, e.g. 'resnet50_ACD'; a `local-dir:` or `hf-hub:` source) is
    not checked. `argument` is the command's name for `model_name`, for the messages; `optional`:
    whether the command can take the architecture from the checkpoint when `argument` is left out.
    """
    arch = obj.get('arch') if isinstance(obj, dict) else None
    arch = arch if isinstance(arch, str) else None
    if model_name is None:
        if arch is None:
            raise CheckpointError(f"{path}: names no architecture (no 'arch' entry): pass {argument}")
        return arch
    if arch is not None and timm.is_model(arch) and timm.is_model(model_name) and \
            split_model_name_tag(arch)[0] != split_model_name_tag(model_name)[0]:
        leave_out = f', or leave {argument} out' if optional else ''
        raise CheckpointError(f"{path}: the checkpoint was trained as {arch} (its 'arch'); {argument} says "
                              f'{model_name}: give {arch}{leave_out}')
    return model_name


def classifier_rows(state_dict: Dict[str, Any], model: nn.Module) -> Optional[int]:
    """Rows of the classifier weights in a state dict in `model`'s own layout: the classes it was trained for."""
    classifiers = model.pretrained_cfg.get('classifier') or ()
    for name in (classifiers,) if isinstance(classifiers, str) else classifiers:
        weight = state_dict.get(f'{name}.weight')
        if isinstance(weight, torch.Tensor) and weight.dim() == 2:
            return weight.shape[0]
    return None


def trained_model_kwargs(
        model_name: str,
        state_dict: Dict[str, Any],
        run: Optional['TrainingRun'],
        model_kwargs: Dict[str, Any],
) -> Dict[str, Any]:
    """The `timm.create_model` settings of the trained model: `model_kwargs` over the run's, and `num_classes`.

    `num_classes` comes from the classifier rows of `state_dict` (in the model's own layout) unless
    given, so that the trained classifier is kept. Raises what `timm.create_model` raises for bad settings.
    """
    kwargs = {**(run.model_kwargs() if run is not None else {}), **model_kwargs}
    if 'num_classes' not in kwargs:
        probe = timm.create_model(model_name, device='meta', **kwargs)
        rows = classifier_rows(state_dict, probe)
        if rows is not None and rows != probe.num_classes:
            kwargs['num_classes'] = rows
    return kwargs


def data_dir(args: Dict[str, Any]) -> Optional[str]:
    """The run's dataset folder: `--data-dir`, else the positional `data` (args.yaml keeps both as given)."""
    root = args.get('data_dir') or args.get('data')
    return str(root) if root else None


def _is_size(value: Any, length: int) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == length and all(isinstance(v, int) for v in value)


@dataclass
class TrainingRun:
    """What a timm `train.py` checkpoint tells of its run: arguments, epoch, metric, and the run's files beside it."""
    args: Dict[str, Any]
    epoch: Optional[int] = None
    metric: Optional[float] = None
    files: Dict[str, str] = field(default_factory=dict)  # args.yaml / summary.csv of the run folder: name -> text

    def model_kwargs(self) -> Dict[str, Any]:
        """The `timm.create_model` settings train.py built the model with that change its outputs.

        `--in-chans` (else `--input-size`'s channels), `--gp`, `--bn-eps` and `--model-kwargs`, as
        train.py passes them; drop rates and BN momentum act in training only.
        """
        args = self.args
        kwargs: Dict[str, Any] = {}
        if isinstance(args.get('in_chans'), int):
            kwargs['in_chans'] = args['in_chans']
        elif _is_size(args.get('input_size'), 3):
            kwargs['in_chans'] = args['input_size'][0]
        if args.get('gp'):
            kwargs['global_pool'] = args['gp']
        if isinstance(args.get('bn_eps'), float):
            kwargs['bn_eps'] = args['bn_eps']
        if isinstance(args.get('model_kwargs'), dict):
            kwargs.update(args['model_kwargs'])
        return kwargs

    def data_config(self) -> Dict[str, Any]:
        """The preprocessing arguments the run set (`DATA_ARGS`, timm's names), for `timm.data.resolve_data_config`.

        Values of another form than train.py's (e.g. an int `input_size` of an older script) are left out.
        """
        valid = {
            'img_size': lambda v: isinstance(v, int),
            'input_size': lambda v: _is_size(v, 3),
            'crop_pct': lambda v: isinstance(v, (int, float)) and v > 0,
            'crop_mode': lambda v: isinstance(v, str) and bool(v),
            'interpolation': lambda v: isinstance(v, str) and bool(v),
            'mean': lambda v: isinstance(v, (list, tuple)) and bool(v),
            'std': lambda v: isinstance(v, (list, tuple)) and bool(v),
        }
        return {key: self.args[key] for key in DATA_ARGS if valid[key](self.args.get(key))}

    def label_names(self) -> Optional[Tuple[str, ...]]:
        """The class names in label order, as train.py's dataset read them: None unless its folder is on disk.

        An ImageFolder (no `--dataset` prefix such as `torch/` or `hfds/`) under `--data-dir` (or the
        positional `data`), its `--train-split` sub-folder found as timm finds it, and `--class-map`.
        """
        args = self.args
        root, dataset = data_dir(args), args.get('dataset') or ''
        if root is None or not Path(root).is_dir() or not isinstance(dataset, str) or '/' in dataset:
            return None
        try:
            reader = create_dataset(dataset, root=root, split=args.get('train_split') or 'train',
                                    class_map=args.get('class_map') or None).reader
        except (OSError, ValueError, AssertionError):  # timm asserts on an empty or unreadable folder
            return None
        class_to_idx = getattr(reader, 'class_to_idx', None)
        if not class_to_idx or sorted(class_to_idx.values()) != list(range(len(class_to_idx))):
            return None
        return tuple(sorted(class_to_idx, key=class_to_idx.get))


def read_training_run(path: Path, obj: Any) -> Optional[TrainingRun]:
    """The run a checkpoint comes from: its saved `args`, `epoch` and `metric`, and `RUN_FILES` beside it.

    timm's `CheckpointSaver` writes `model_best.pth.tar`, `last.pth.tar` and `checkpoint-N.pth.tar`
    into the run folder where `train.py` keeps `args.yaml` and `summary.csv`; args.yaml wins over
    the checkpoint's own `args`. None when the file shows no sign of a run.
    """
    files = {name: (path.parent / name).read_text(encoding='utf-8')
             for name in RUN_FILES if (path.parent / name).is_file()}
    saved = obj.get('args') if isinstance(obj, dict) else None
    args = vars(saved) if isinstance(saved, argparse.Namespace) else dict(saved) if isinstance(saved, dict) else {}
    if 'args.yaml' in files:
        args = yaml.safe_load(files['args.yaml']) or {}
        if not isinstance(args, dict):
            raise CheckpointError(f'{path.parent / "args.yaml"}: does not hold a mapping of train.py arguments')
    if not args and not files:
        return None
    epoch, metric = (obj.get('epoch'), obj.get('metric')) if isinstance(obj, dict) else (None, None)
    return TrainingRun(
        args=args,
        epoch=epoch if isinstance(epoch, int) else None,
        metric=float(metric) if isinstance(metric, (int, float)) else None,
        files=files,
    )
