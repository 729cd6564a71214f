"""Learning-rate robustness: the pair trained at a ladder of learning rates with a short, fast-decaying schedule.

The papers' claim (Wang et al., TPAMI 2023, sec. 5): GCP tolerates larger learning rates and a faster
decay ("LRfast": a polynomial schedule cut short) with little loss of accuracy, while the
average-pooling twin falls behind. Each rung starts the pair afresh from the same initial weights and
feeds the same batches in the same order; SGD with momentum, the learning rate decaying per update as
lr (1 - t / T)^power to zero over the rung's few epochs.
See docs/analysis.md, "Learning-rate ladder".
"""
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import nn

from ..training.loop import OptimConfig, train_pair

__all__ = ['ladder_optim', 'train_ladder']


def ladder_optim(lr: float, opt: str = 'sgd', weight_decay: float = 1e-4, power: float = 2.0) -> OptimConfig:
    """One rung's optimizer: `opt` at peak `lr`, polynomial decay lr (1 - t/T)^power to zero, per update."""
    return OptimConfig(opt=opt, lr=lr, weight_decay=weight_decay, sched='poly', min_lr_ratio=0.0, decay_rate=power)


def train_ladder(
        names: Sequence[str],
        make_pair: Callable[[], Tuple[nn.Module, nn.Module]],
        data,
        lrs: Sequence[float],
        epochs: int,
        seed: int,
        opt: str = 'sgd',
        power: float = 2.0,
) -> List[Dict]:
    """Train a fresh pair from `make_pair` at each learning rate; per rung the lr and the per-epoch history."""
    rungs = []
    for lr in lrs:
        history = train_pair(names, make_pair(), data, epochs, ladder_optim(lr, opt, power=power),
                             torch.Generator().manual_seed(seed), rows=False, desc=f'lr {lr:g} ')
        rungs.append(dict(lr=float(lr), epochs=history))
    return rungs
