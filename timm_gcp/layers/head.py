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
    """The pool type a model's `reset_classifier(num_classes, requested)` leaves, checked.

    None keeps `current`, except that a classifier on unpooled features brings the GCP pooling back,
    as timm's ResNet brings back its average pooling.
    """
    if requested is None:
        requested = 'gcp' if num_classes > 0 else current
    check_pool_type(requested, num_classes, 'global_pool')
    return requested


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
            **pool_kwargs: `GCPPool` settings (reduce_dim, norm, iters, power, dropcov, dropcov_scale, feat_stride,
                bn_eps, act_layer, input_fmt).
        """
        super().__init__()
        check_pool_type(pool_type, num_classes)
        check_rate(drop_rate, 'drop_rate')
        self.in_features = in_features
        self.num_classes = num_classes
        self.pool_type = pool_type
        pool = GCPPool(in_features, device=device, dtype=dtype, **pool_kwargs) if pool_type else nn.Identity()
        self.global_pool = pool
        self.num_features = self.global_pool.out_features if pool_type else in_features
        self.drop = nn.Dropout(drop_rate)
        self.fc = self._make_fc(num_classes, device=device, dtype=dtype)

    def _make_fc(self, num_classes: int, device=None, dtype=None) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        return nn.Linear(self.num_features, num_classes, device=device, dtype=dtype)

    def reset(self, num_classes: int, pool_type: Optional[str] = None, device=None, dtype=None) -> None:
        """Replace the classifier (0: none), keeping the pooling and its weights (and frozen state).

        `pool_type=''` also removes the pooling: the head then passes features through. A removed
        pooling cannot come back; build a new head for that. The new classifier takes `device` /
        `dtype`, by default those of the head's parameters.
        """
        dd = get_device_dtype(self, device, dtype)
        pool_type = self.pool_type if pool_type is None else pool_type
        check_pool_type(pool_type, num_classes)
        if pool_type != self.pool_type:
            if pool_type:
                raise ValueError('this head has no pooling left to restore; build a new GCPHead')
            self.pool_type = pool_type
            self.global_pool = nn.Identity()
            self.num_features = self.in_features
        self.num_classes = num_classes
        self.fc = self._make_fc(num_classes, **dd)
        self.fc.train(self.training)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not self.pool_type:
            return x
        x = self.drop(self.global_pool(x))
        return x if pre_logits else self.fc(x)
