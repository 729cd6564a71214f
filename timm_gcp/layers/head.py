"""The GCP classifier head: global covariance pooling, dropout and one Linear.

Laid out like timm's `ClassifierHead` (`global_pool`, `drop`, `fc`; `in_features` is the input
width, `num_features` the pooled width the classifier sees), with `GCPPool` as the pooling.
"""
from typing import Optional

import torch
from torch import nn
from timm.layers import get_device_dtype

from ._checks import check_rate
from .pool import GCPPool

GCP_POOL_TYPES = ('gcp', '')


def check_pool_type(pool_type: str, num_classes: int, name: str = 'pool_type') -> None:
    """Raise a ValueError naming the argument `name`: an unknown pool type, or unpooled features with a classifier."""
    if pool_type not in GCP_POOL_TYPES:
        raise ValueError(f'unknown GCP {name} {pool_type!r}, expected one of {GCP_POOL_TYPES}')
    if not pool_type and num_classes > 0:
        raise ValueError(f"{name}='' returns the unpooled features and needs num_classes=0")


def reset_pool_type(current: str, requested: Optional[str], num_classes: int) -> str:
    """The pool type a head's `reset(num_classes, requested)` leaves, checked.

    None keeps `current`, except that a classifier on unpooled features brings the GCP pooling back,
    as timm's ResNet brings back its average pooling.
    """
    if requested is None:
        requested = 'gcp' if num_classes > 0 else current
    check_pool_type(requested, num_classes)
    return requested


def make_fc(in_features: int, num_classes: int, device=None, dtype=None) -> nn.Module:
    """The classifier of a GCP head: a Linear, or Identity for num_classes <= 0 (as timm's heads)."""
    if num_classes <= 0:
        return nn.Identity()
    return nn.Linear(in_features, num_classes, device=device, dtype=dtype)


class GCPHead(nn.Module):
    """Global covariance pooling head: features B x in_features x H x W to logits (or the pooled vector)."""

    def __init__(
            self,
            in_features: int,
            num_classes: int = 1000,
            pool_type: str = 'gcp',
            drop_rate: float = 0.0,
            device=None,
            dtype=None,
            **pool_kwargs,
    ) -> None:
        """
        Args:
            in_features: Channels of the input features.
            num_classes: Classifier outputs; 0 returns the pooled vector.
            pool_type: 'gcp', or '' to return the features unpooled (requires num_classes=0).
            drop_rate: Dropout on the pooled vector before the classifier.
            **pool_kwargs: `GCPPool` settings (dim, norm, iters, power, dropcov, dropcov_scale, expand, act, bn_eps,
                input_fmt, min_input), kept to rebuild the pooling in `reset`.
        """
        super().__init__()
        check_pool_type(pool_type, num_classes)
        check_rate(drop_rate, 'drop_rate')
        self.in_features = in_features
        self.num_classes = num_classes
        self.pool_type = pool_type
        self.pool_kwargs = pool_kwargs
        self.global_pool = self._make_pool(device=device, dtype=dtype)
        self.num_features = self.global_pool.out_features if pool_type else in_features
        self.drop = nn.Dropout(drop_rate)
        self.fc = make_fc(self.num_features, num_classes, device=device, dtype=dtype)

    def _make_pool(self, device=None, dtype=None) -> nn.Module:
        if not self.pool_type:
            return nn.Identity()
        return GCPPool(self.in_features, device=device, dtype=dtype, **self.pool_kwargs)

    def reset(
            self,
            num_classes: int,
            pool_type: Optional[str] = None,
            in_features: Optional[int] = None,
            device=None,
            dtype=None,
    ) -> None:
        """Replace the classifier (0: none), as timm's `ClassifierHead.reset`.

        The pooling keeps its weights and frozen state unless `pool_type` or `in_features` changes it:
        `pool_type=''` removes it (features pass through; needs num_classes=0), None keeps it, and a
        classifier on unpooled features brings a new GCP pooling back; a new `in_features` (e.g. after
        pruning the layers that feed the head) builds a new pooling for that width. New layers take
        `device` / `dtype`, by default those of the head's parameters.
        """
        dd = get_device_dtype(self, device, dtype)
        pool_type = reset_pool_type(self.pool_type, pool_type, num_classes)
        in_features = self.in_features if in_features is None else in_features
        if pool_type != self.pool_type or in_features != self.in_features:
            self.pool_type, self.in_features = pool_type, in_features
            self.global_pool = self._make_pool(**dd)
            self.global_pool.train(self.training)
            self.num_features = self.global_pool.out_features if pool_type else in_features
        self.num_classes = num_classes
        self.fc = make_fc(self.num_features, num_classes, **dd)
        self.fc.train(self.training)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not self.pool_type:
            return x
        x = self.drop(self.global_pool(x))
        return x if pre_logits else self.fc(x)
