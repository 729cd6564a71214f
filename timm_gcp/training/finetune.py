"""Fine-tuning and probing as GCP is used: the head's own learning rate, a frozen trunk, flip-averaged logits.

fast-MPN-COV fine-tunes an ImageNet GCP model on fine-grained data with the classifier at 5x the
learning rate of the rest (`classifier_factor`) and scores the mean of the logits of each test image
and its mirror image; Moment Probing (Gao et al., ICCV 2023) trains a second-order head on a frozen
pretrained trunk. These are the pieces, on any timm model:

* `head_module_names`, `head_parameters`: what the head is. `'head'`: a GCP model's whole GCP head
  (reduction, covariance, classifier: the `GCPHead` or `TokenGCPHead`), the classifier of any other
  model; `'classifier'`: the classifier alone (`get_classifier()`).
* `scale_head_lr`: the head's parameters at K times their group's learning rate, through the
  `lr_scale` every timm scheduler applies at each update (on top of layer decay's).
* `freeze_trunk`: every parameter outside the head frozen, the trunk kept in eval mode (BatchNorm
  statistics, dropout and drop-path frozen too), the state dict unchanged.
* `flip_average`: in eval mode the model returns (f(x) + f(flip(x))) / 2.

See docs/training.md, "Fine-tuning and probing".
"""
import functools
from typing import Any, List, Sequence, Tuple

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..layers import GCPHead, TokenGCPHead

__all__ = ['HEAD_SCOPES', 'flip_average', 'freeze_trunk', 'head_module_names', 'head_parameters', 'in_modules',
           'scale_head_lr']

HEAD_SCOPES = ('head', 'classifier')


def _classifier_names(model: nn.Module) -> List[str]:
    """The names of the modules `model.get_classifier()` returns (one, or a tuple as the GCP ViTs' two);
    ValueError for a model without a classifier."""
    get_classifier = getattr(model, 'get_classifier', None)
    if get_classifier is None:
        raise ValueError(f'{type(model).__name__} has no get_classifier(): not a timm classification model')
    classifiers = get_classifier()
    classifiers = classifiers if isinstance(classifiers, (tuple, list)) else (classifiers,)
    if not any(True for c in classifiers for _ in c.parameters()):
        raise ValueError(f'{type(model).__name__} has no classifier (num_classes=0): give it classes first')
    names = [name for name, m in model.named_modules() if any(m is c for c in classifiers)]
    if len(names) != len(classifiers):
        raise ValueError(f'the classifier of {type(model).__name__} is not one of its modules')
    return names


def head_module_names(model: nn.Module, scope: str = 'head') -> List[str]:
    """Names of the modules that form the head of `model` in `scope` ('head' or 'classifier', see the module)."""
    if scope not in HEAD_SCOPES:
        raise ValueError(f"unknown head scope '{scope}'; valid: {', '.join(HEAD_SCOPES)}")
    if scope == 'head':
        gcp = [name for name, m in model.named_modules() if isinstance(m, (GCPHead, TokenGCPHead))]
        outermost = [n for n in gcp if not any(n.startswith(o + '.') for o in gcp if o != n)]
        if outermost:
            return outermost
    return _classifier_names(model)


def in_modules(name: str, modules: Sequence[str]) -> bool:
    """Whether `name` (a module, parameter or state dict key) is one of `modules` or lies inside one."""
    return any(name == m or name.startswith(m + '.') for m in modules)


def head_parameters(model: nn.Module, scope: str = 'head') -> List[nn.Parameter]:
    """The parameters of the head of `model` in `scope`, in `named_parameters` order."""
    heads = head_module_names(model, scope)
    return [p for name, p in model.named_parameters() if in_modules(name, heads)]


def scale_head_lr(optimizer: torch.optim.Optimizer, model: nn.Module, scale: float, scope: str = 'head') -> None:
    """Give the head's parameters (of `scope`) `scale` x the learning rate of the param group they are in.

    Each group that holds head parameters is split: the head's part becomes a group of its own with the
    same settings (weight decay, layer decay's `lr_scale`), its `lr_scale` multiplied by `scale`, and its
    `lr` and `initial_lr` set as a timm scheduler sets them, so the ratio holds at every update of any
    `--sched` (timm's schedulers multiply each group's value by its `lr_scale`) and without a scheduler.
    The split goes into the optimizer's state dict (the head's groups with `head_lr_scale`), so a resumed
    run keeps it. Call it before the first step and before the scheduler is created.
    """
    if not scale > 0:
        raise ValueError(f'the head learning-rate scale must be positive, got {scale}')
    if optimizer.state:
        raise ValueError('scale_head_lr must run before the first optimizer step (the optimizer has state)')
    head = {id(p) for p in head_parameters(model, scope)}
    if not any(id(p) in head for group in optimizer.param_groups for p in group['params']):
        raise ValueError(f'none of the {scope} parameters of {type(model).__name__} is in the optimizer '
                         '(are they frozen?)')
    for group in list(optimizer.param_groups):
        in_head = [p for p in group['params'] if id(p) in head]
        if not in_head:
            continue
        base_lr = group.get('initial_lr', group['lr'])
        lr_scale = group.get('lr_scale', 1.0) * scale
        scaled = dict(group, params=in_head, lr_scale=lr_scale, lr=base_lr * lr_scale, initial_lr=base_lr,
                      head_lr_scale=scale)
        rest = [p for p in group['params'] if id(p) not in head]
        if rest:
            group['params'] = rest
            optimizer.add_param_group(scaled)
        else:
            group.update(scaled)


def _trunk_roots(model: nn.Module, heads: Sequence[str]) -> List[str]:
    """The outermost modules that hold no head module: the trunk, as the modules to keep in eval mode."""
    roots = []
    for name, _ in model.named_modules():
        if not name or in_modules(name, heads) or in_modules(name, roots):
            continue
        if not any(h.startswith(name + '.') for h in heads):  # not a container of the head
            roots.append(name)
    return roots


def _keep_eval(model: nn.Module, args: Tuple[Any, ...], roots: Sequence[str]) -> None:
    """Forward pre-hook: the trunk in eval mode whatever `model.train()` set (found by name, so a module that
    `convert_sync_batchnorm` replaced, or a deep copy for EMA, is covered too)."""
    if model.training:
        for name in roots:
            model.get_submodule(name).train(False)


def freeze_trunk(model: nn.Module, scope: str = 'head') -> List[str]:
    """Train only the head (of `scope`): every other parameter frozen, the trunk in eval mode at every forward.

    Frozen parameters take no gradient, so autograd records nothing in the trunk and its activations are
    not kept: a step costs the trunk's forward and the head's forward and backward. The trunk runs in
    eval mode whatever the training loop sets (BatchNorm uses and keeps its running statistics, as timm's
    `freeze` makes it; dropout and drop-path are off), while the state dict keeps its keys, so checkpoints,
    EMA and resume are those of the unfrozen model. Returns the head's module names.
    """
    heads = head_module_names(model, scope)
    for name, p in model.named_parameters():
        if not in_modules(name, heads):
            p.requires_grad_(False)
    model.register_forward_pre_hook(functools.partial(_keep_eval, roots=tuple(_trunk_roots(model, heads))))
    return heads


def _flip_mean(model: nn.Module, args: Tuple[Any, ...], output: Any) -> Any:
    """Forward hook: in eval mode, the mean of the output and the output of the images flipped along their width."""
    if model.training:
        return output
    if not isinstance(output, torch.Tensor):
        raise TypeError(f'flip averaging needs a tensor of logits, {type(model).__name__} returned '
                        f'{type(output).__name__}')
    return (output + model.forward(args[0].flip(-1))) / 2  # forward(), not __call__: no second hook


def flip_average(model: nn.Module) -> RemovableHandle:
    """In eval mode `model(x)` returns the mean of the logits of `x` and of its mirror images (flipped along the
    width), as fast-MPN-COV scores its test images; training is unchanged. Returns the hook's handle."""
    return model.register_forward_hook(_flip_mean)
