"""A model pair trained side by side on the same batches: the loop `timm-gcp demo` and `timm-gcp analyze` share.

`create_pair` builds any two timm models from the same seed and copies the first's trunk into the
second (`trunk_share` maps the names, also from a trunk under `backbone.`), so the heads are the only
difference; `train_pair` steps both on each batch in turn, with
timm's `create_optimizer_v2`, `create_scheduler_v2` (per update) and `ClassificationTask`, as
train.py does, and evaluates both after every epoch. The data comes from a `PairData`
(`timm_gcp.training.data`): Fashion-MNIST in memory or any timm dataset.
"""
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import timm
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.task import ClassificationTask
from torch import nn

from .._extras import require

__all__ = ['RESNET_CHANNELS', 'TRUNK_PREFIXES', 'OptimConfig', 'Trainer', 'TrunkShare', 'check_class_counts',
           'classifier_names', 'create_pair', 'evaluate', 'small_resnet_kwargs', 'table_header', 'table_row',
           'train_pair', 'trunk_share']

RESNET_CHANNELS = (64, 128, 256, 512)
# where a GCP model keeps the trunk of the plain model: at the top (GCP ResNets, ViTs) or under `backbone.`
# (the models on any timm backbone and their presets, docs/backbones.md)
TRUNK_PREFIXES = ('', 'backbone.')
Batches = Iterable[Tuple[torch.Tensor, torch.Tensor]]
# called before each update with (update index, images, targets): the landscape probe hooks in here
StepHook = Callable[[int, torch.Tensor, torch.Tensor], None]


def small_resnet_kwargs(width: float) -> Dict[str, Any]:
    """timm ResNet kwargs for the stages at `width` times ResNet-18's channels (64-512), at least 8."""
    return dict(channels=tuple(max(8, round(c * width)) for c in RESNET_CHANNELS))


def check_class_counts(models: Sequence[nn.Module], names: Sequence[str]) -> int:
    """The class count both models share; ValueError naming both counts when they differ."""
    counts = [getattr(m, 'num_classes', None) for m in models]
    if counts[0] != counts[1]:
        raise ValueError(f"the pair must share its classes: '{names[0]}' has {counts[0]}, '{names[1]}' has {counts[1]}")
    return counts[0]


def classifier_names(model: nn.Module) -> Tuple[str, ...]:
    """The module names of `model`'s classifier: its pretrained cfg's `classifier` (timm's), else `head` and `fc`."""
    names = (getattr(model, 'pretrained_cfg', None) or {}).get('classifier') or ('head', 'fc')
    return (names,) if isinstance(names, str) else tuple(names)


@dataclass
class TrunkShare:
    """Which of the twin's trunk tensors (its state dict without the classifier) the GCP model gives it.

    `mapping`: twin name -> GCP model name, for each trunk tensor with a GCP tensor of the same shape;
    `missing`: the twin's trunk tensors without one; `extra`: the GCP model's tensors outside its head
    that no twin tensor maps to (a deeper trunk). A true twin has neither.
    """
    mapping: Dict[str, str]
    missing: List[str]
    extra: List[str]

    @property
    def shared(self) -> int:
        return len(self.mapping)

    @property
    def total(self) -> int:
        return len(self.mapping) + len(self.missing)

    @property
    def paired(self) -> bool:
        """Whether the twin's trunk and the GCP model's are the same tensors: every one copied, none left over."""
        return not self.missing and not self.extra

    @property
    def note(self) -> str:
        """How much of the twin's trunk the pair shares, in words ('unpaired' where not all of it)."""
        if self.paired:
            return f'same initial trunk ({self.shared} of {self.total} trunk tensors shared)'
        extra = f', {len(self.extra)} GCP trunk tensors without a twin tensor' if self.extra else ''
        return f"unpaired: {self.shared} of the twin's {self.total} trunk tensors shared{extra}"

    def to_dict(self) -> Dict[str, Any]:
        return dict(shared=self.shared, total=self.total, paired=self.paired, note=self.note, missing=self.missing,
                    extra=self.extra)


def trunk_share(gcp: nn.Module, twin: nn.Module) -> TrunkShare:
    """Map each trunk tensor of `twin` to the tensor of `gcp` under the same name, or under `backbone.` plus it,
    with the same shape (models on the meta device do: only names and shapes are read). The GCP model's head
    is its `head` (every timm_gcp model's GCP head) and its classifier."""
    source = gcp.state_dict()
    heads = tuple(f'{name}.' for name in classifier_names(twin))
    gcp_heads = tuple(f'{name}.' for name in ('head', *classifier_names(gcp)))
    mapping, missing = {}, []
    for name, tensor in twin.state_dict().items():
        if name.startswith(heads):
            continue
        match = next((prefix + name for prefix in TRUNK_PREFIXES
                      if prefix + name in source and source[prefix + name].shape == tensor.shape), None)
        if match is None:
            missing.append(name)
        else:
            mapping[name] = match
    copied = set(mapping.values())
    extra = [name for name in source if name not in copied and not name.startswith(gcp_heads)]
    return TrunkShare(mapping, missing, extra)


def create_pair(
        names: Sequence[str],
        kwargs: Sequence[Dict[str, Any]],
        seed: int,
) -> Tuple[nn.Module, nn.Module]:
    """Two timm models created from the same seed, the second with the first's trunk (`trunk_share`'s mapping).

    The classifier is not copied. With a GCP model and its plain twin this gives both the same initial
    trunk, so a comparison measures the pooling alone; `trunk_share` says how much of the trunk that is.
    """
    models = []
    for name, model_kwargs in zip(names, kwargs):
        if not timm.is_model(name):
            raise ValueError(f"'{name}' is not a timm model (did you import its plugin?)")
        torch.manual_seed(seed)
        models.append(timm.create_model(name, **model_kwargs))
    check_class_counts(models, names)
    first, second = models
    source = first.state_dict()
    second.load_state_dict({k: source[v] for k, v in trunk_share(first, second).mapping.items()}, strict=False)
    return first, second


def evaluate(model: nn.Module, batches: Batches) -> Dict[str, float]:
    """Test loss and top-1 accuracy (%) of `model` in eval mode, with timm's classification evaluator."""
    task = ClassificationTask(model, criterion=nn.CrossEntropyLoss(), verbose=False)
    model.eval()
    evaluator = task.create_evaluator()
    with torch.no_grad():
        for x, y in batches:
            evaluator.update(model(x), y)
    metrics = evaluator.compute()
    return {'test_loss': metrics['loss'], 'test_acc': metrics['top1']}


@dataclass
class OptimConfig:
    """Optimizer and per-update schedule, as timm's create_optimizer_v2 / create_scheduler_v2 take them.

    The demo's default: AdamW with a cosine decay to lr / 100. The LR ladder's: SGD with momentum and
    a polynomial decay (power `decay_rate`) to zero, the papers' fast-decay schedules.
    """
    opt: str = 'adamw'
    lr: float = 2e-3
    weight_decay: float = 0.05
    sched: str = 'cosine'
    min_lr_ratio: float = 0.01
    decay_rate: float = 0.1
    momentum: float = 0.9


class Trainer:
    """One model with its task, optimizer and per-update schedule."""

    def __init__(self, name: str, model: nn.Module, optim: OptimConfig, epochs: int, steps_per_epoch: int) -> None:
        self.name = name
        self.model = model
        self.params = sum(p.numel() for p in model.parameters())
        self.task = ClassificationTask(model, criterion=nn.CrossEntropyLoss(), verbose=False)
        self.optimizer = create_optimizer_v2(model, opt=optim.opt, lr=optim.lr, weight_decay=optim.weight_decay,
                                             momentum=optim.momentum)
        self.scheduler, _ = create_scheduler_v2(
            self.optimizer, sched=optim.sched, num_epochs=epochs, warmup_epochs=0, min_lr=optim.lr * optim.min_lr_ratio,
            decay_rate=optim.decay_rate, step_on_epochs=False, updates_per_epoch=steps_per_epoch)
        self.updates = 0
        self.loss_sum, self.count, self.seconds = 0.0, 0, 0.0

    def step(self, x: torch.Tensor, y: torch.Tensor, on_step: Optional[StepHook] = None) -> float:
        """One update on a batch (after `on_step` saw the weights it starts from, in training mode); the batch loss."""
        self.task.train()
        if on_step is not None:
            on_step(self.updates, x, y)
        t0 = time.perf_counter()
        loss = self.task(x, y)['loss']
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        self.scheduler.step_update(self.updates)
        self.seconds += time.perf_counter() - t0
        self.loss_sum += loss.item() * len(y)
        self.count += len(y)
        return loss.item()

    def end_epoch(self, test_batches: Batches) -> Dict[str, float]:
        """The epoch's mean training loss and training seconds, and the test metrics; resets the sums."""
        result = dict(train_loss=self.loss_sum / max(self.count, 1), seconds=self.seconds,
                      **evaluate(self.model, test_batches))
        self.loss_sum, self.count, self.seconds = 0.0, 0, 0.0
        return result


_COLUMNS = ('train loss', 'test loss', 'test acc', 'time')
_WIDTH = 11


def table_header(names: Sequence[str], twin: str = 'twin') -> List[str]:
    """The two header lines of the per-epoch table of a GCP model and its twin (labelled `twin`)."""
    block = len(_COLUMNS) * _WIDTH
    titles = '      ' + f'{names[0] + " (GCP)":^{block}}' + ' |' + f'{names[1] + f" ({twin})":^{block}}'
    columns = ''.join(f'{c:>{_WIDTH}}' for c in _COLUMNS)
    return [titles.rstrip(), f'epoch {columns} |{columns}']


def table_row(epoch: int, results: Sequence[Dict[str, float]]) -> str:
    """One epoch's row: train loss, test loss, test accuracy and training time of both models."""
    blocks = []
    for r in results:
        cells = (f"{r['train_loss']:.4f}", f"{r['test_loss']:.4f}", f"{r['test_acc']:.2f} %", f"{r['seconds']:.0f} s")
        blocks.append(''.join(f'{c:>{_WIDTH}}' for c in cells))
    return f'{epoch:>5} ' + ' |'.join(blocks)


def train_pair(
        names: Sequence[str],
        models: Sequence[nn.Module],
        data: Any,
        epochs: int,
        optim: OptimConfig,
        generator: torch.Generator,
        on_step: Optional[Sequence[Optional[StepHook]]] = None,
        rows: bool = True,
        desc: str = '',
) -> List[Dict]:
    """Train both models on the same batches in the same order, evaluating both after each epoch; the history.

    `data` is a `PairData`; `generator` draws the batch order and augmentation, so a seed repeats a run.
    `on_step[i]`, if given, sees model i's weights and batch before each of its updates. With `rows`,
    a table row per epoch is printed under progress bars (tqdm, the [demo] extra).
    """
    tqdm = require('tqdm', 'demo').tqdm
    steps = data.steps_per_epoch
    trainers = [Trainer(name, model, optim, epochs, steps) for name, model in zip(names, models)]
    hooks = list(on_step) if on_step is not None else [None, None]
    history = []
    for epoch in range(1, epochs + 1):
        with tqdm(total=steps, desc=f'{desc}epoch {epoch}/{epochs}', leave=False, disable=None,
                  file=sys.stderr) as progress:
            for x, y in data.train_batches(generator):
                losses = [t.step(x, y, hook) for t, hook in zip(trainers, hooks)]
                progress.set_postfix_str(' '.join(f'{t.name} {loss:.3f}' for t, loss in zip(trainers, losses)))
                progress.update(1)
        results = [t.end_epoch(data.test_batches()) for t in trainers]
        history.append(dict(epoch=epoch, gcp=results[0], twin=results[1]))
        if rows:
            tqdm.write(table_row(epoch, results))
    return history
