"""What the launcher adds to timm's train.py and validate.py: the head's learning rate, a frozen trunk, flip-averaged
evaluation, the fine-grained training crop, and DDP on the CPU.

The options are an argument group of the script's own parser (`add_script_arguments`), so train.py's
args.yaml records them and `--config` takes them. `ScriptPatches` replaces the few names the script's
main() looks up in its module: `create_model` (the frozen trunk, flip averaging), `create_optimizer_v2`
(the head's learning rate), `create_loader` (the training crop, train.py's `--crop-mode`), the task
classes and `convert_sync_batchnorm` (DDP and `--sync-bn` on the CPU). See docs/training.md,
"The launcher's options".
"""
import argparse
from typing import Any, Callable, Dict, List, Optional

import torch
from timm.data import MaybePILToTensor, RandomResizedCropAndInterpolation, create_transform, resolve_data_config
from timm.task import TrainingTask
from torch import nn

from .distributed import ddp_device_ids, sync_batchnorm_on_cpu
from .finetune import HEAD_SCOPES, flip_average, freeze_trunk, scale_head_lr

__all__ = ['EVAL_CROP_MODES', 'GROUP_TITLE', 'ScriptPatches', 'add_script_arguments', 'eval_crop_train_transform',
           'options_in_use']

GROUP_TITLE = 'timm-gcp'
EVAL_CROP_MODES = ('center', 'squash', 'border')  # timm's evaluation crops; as --train-crop-mode, the launcher's


def add_script_arguments(parser: argparse.ArgumentParser, train: bool) -> None:
    """The launcher's options as the argument group 'timm-gcp' of train.py's (`train`) or validate.py's parser."""
    group = parser.add_argument_group(GROUP_TITLE, 'options of timm-gcp launch (docs/training.md, '
                                                   '"The launcher\'s options")')
    group.add_argument('--flip-test', action=argparse.BooleanOptionalAction, default=False,
                       help='evaluate the mean of the logits of each image and its mirror image')
    if not train:
        return
    group.add_argument('--head-lr-scale', type=float, default=None, metavar='K',
                       help='train the head (--head-lr-scope) at K x the learning rate, through every schedule')
    group.add_argument('--head-lr-scope', choices=HEAD_SCOPES, default='classifier',
                       help="what --head-lr-scale scales: the classifier (fast-MPN-COV's classifier_factor) or the "
                            "whole GCP head (default: classifier)")
    group.add_argument('--freeze-trunk', nargs='?', const='head', default=None, choices=HEAD_SCOPES,
                       help='train only the head (the whole GCP head, or the classifier alone) on a frozen, '
                            'eval-mode trunk')
    if not any('--crop-mode' in action.option_strings for action in parser._actions):
        group.add_argument('--crop-mode', choices=EVAL_CROP_MODES, default=None,
                           help="the evaluation's crop (timm's crop modes; default: timm's centre crop)")


def options_in_use(args: argparse.Namespace, train: bool) -> List[str]:
    """The launcher's options `args` sets, as flags (train.py's `--train-crop-mode` with an evaluation crop too)."""
    used = []
    if getattr(args, 'flip_test', False):
        used.append('--flip-test')
    if not train:
        return used
    if getattr(args, 'head_lr_scale', None) is not None:
        used.append('--head-lr-scale')
    if getattr(args, 'freeze_trunk', None):
        used.append('--freeze-trunk')
    if getattr(args, 'crop_mode', None):
        used.append('--crop-mode')
    if getattr(args, 'train_crop_mode', None) in EVAL_CROP_MODES:
        used.append(f'--train-crop-mode {args.train_crop_mode}')
    return used


def eval_crop_train_transform(transform: Any, data_config: Dict[str, Any], crop_mode: str) -> Any:
    """timm's training transform with its random-resized crop replaced by the evaluation's crop (`crop_mode` with
    `data_config`'s size, crop_pct and interpolation), as fast-MPN-COV trains on fine-grained images: the rest
    (flips, colour jitter, tensor conversion, random erasing) unchanged."""
    steps = getattr(transform, 'transforms', None)
    if not steps or not isinstance(steps[0], RandomResizedCropAndInterpolation):
        raise ValueError(f"the training transform does not start with timm's random-resized crop: {transform}")
    crop = create_transform(data_config['input_size'], is_training=False, interpolation=data_config['interpolation'],
                            crop_pct=data_config['crop_pct'], crop_mode=crop_mode, use_prefetcher=True)
    if not isinstance(crop.transforms[-1], MaybePILToTensor):
        raise ValueError(f"timm's evaluation transform does not end with its tensor conversion: {crop}")
    return type(transform)([*crop.transforms[:-1], *steps[1:]])


def _cpu_task(cls: type) -> type:
    """`cls` (a timm training task) whose prepare_distributed gives DDP no device ids for a CPU device."""
    def prepare_distributed(self, device_ids: Optional[list] = None, **ddp_kwargs: Any) -> TrainingTask:
        return cls.prepare_distributed(self, device_ids=ddp_device_ids(device_ids), **ddp_kwargs)
    return type(cls.__name__, (cls,), {'prepare_distributed': prepare_distributed, '__module__': cls.__module__})


def _on_model_device(convert: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """`convert` (timm's convert_sync_batchnorm), with `sync_batchnorm_on_cpu` for a model on the CPU."""
    def convert_sync_batchnorm(module: nn.Module, *args: Any, **kwargs: Any) -> nn.Module:
        if all(p.device.type == 'cpu' for p in module.parameters()):
            return sync_batchnorm_on_cpu(module)
        return convert(module, *args, **kwargs)
    return convert_sync_batchnorm


class ScriptPatches:
    """The names of a timm script's module that the launcher's options replace, built from its parsed `args`."""

    def __init__(self, args: argparse.Namespace, train: bool) -> None:
        self.args = args
        self.train = train
        self.model: Optional[nn.Module] = None  # the last model create_model built

    def install(self, namespace: Dict[str, Any]) -> None:
        """Replace the names in `namespace` (the script's module globals) that the options need."""
        namespace['create_model'] = self._create_model(namespace['create_model'])
        if not self.train:
            return
        namespace['create_optimizer_v2'] = self._create_optimizer(namespace['create_optimizer_v2'])
        namespace['create_loader'] = self._create_loader(namespace['create_loader'])
        if 'convert_sync_batchnorm' in namespace:
            namespace['convert_sync_batchnorm'] = _on_model_device(namespace['convert_sync_batchnorm'])
        for name, value in list(namespace.items()):
            if isinstance(value, type) and issubclass(value, TrainingTask):
                namespace[name] = _cpu_task(value)

    def _create_model(self, create: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        def create_model(*args: Any, **kwargs: Any) -> nn.Module:
            model = create(*args, **kwargs)
            if self.train and self.args.freeze_trunk:
                freeze_trunk(model, self.args.freeze_trunk)
            if self.args.flip_test:
                flip_average(model)
            self.model = model
            return model
        return create_model

    def _create_optimizer(self, create: Callable[..., torch.optim.Optimizer]) -> Callable[..., torch.optim.Optimizer]:
        def create_optimizer_v2(model: nn.Module, *args: Any, **kwargs: Any) -> torch.optim.Optimizer:
            optimizer = create(model, *args, **kwargs)
            if self.args.head_lr_scale is not None:
                scale_head_lr(optimizer, model, self.args.head_lr_scale, self.args.head_lr_scope)
            return optimizer
        return create_optimizer_v2

    def _create_loader(self, create: Callable[..., Any]) -> Callable[..., Any]:
        def create_loader(dataset: Any, *args: Any, **kwargs: Any) -> Any:
            training = kwargs.get('is_training', False)
            eval_crop = self.args.train_crop_mode if self.args.train_crop_mode in EVAL_CROP_MODES else None
            if training and eval_crop:
                kwargs['train_crop_mode'] = None  # timm's random-resized crop, replaced below
            if not training and self.args.crop_mode and kwargs.get('crop_mode') is None:
                kwargs['crop_mode'] = self.args.crop_mode
            loader = create(dataset, *args, **kwargs)
            if training and eval_crop:
                data_config = resolve_data_config(vars(self.args), model=self.model, verbose=False)
                dataset.transform = eval_crop_train_transform(dataset.transform, data_config, eval_crop)
            return loader
        return create_loader
