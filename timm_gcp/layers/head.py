"""The GCP classifier head for B x C x H x W features.

reduce (1x1 conv + BN + ReLU to `dim`) -> [DropCov, training only] -> covariance -> normalization
(`isqrt`: iSQRT-COV, `mpn`: MPN-COV, `none`: DropCov and plain covariance pooling) -> upper
triangle -> [dropout] -> fc. This is the head of the fast-MPN-COV, CVPR'20, TPAMI'23 and DropCov
ResNets; `pre_logits` is the d(d+1)/2 vector the fc sees.
"""
from typing import Optional

import torch
from torch import nn
from timm.layers import ConvNormAct, get_device_dtype, register_notrace_function, register_notrace_module

from .cov import CovPool, TriuVec
from .dropcov import AdaptiveChannelDrop
from .sqrtm import ISqrt, MatrixPower

GCP_NORMS = ('isqrt', 'mpn', 'none')
GCP_POOL_TYPES = ('gcp', '')

for _leaf in (CovPool, ISqrt, MatrixPower, AdaptiveChannelDrop, TriuVec):
    # the matrix work is shape- and autocast-dependent Python: FX keeps these modules as leaves
    register_notrace_module(_leaf)


@register_notrace_function
def check_head_input(x: torch.Tensor, in_chs: int) -> None:
    """Raise a ValueError naming the expected channel count unless `x` is B x in_chs x H x W."""
    if x.ndim != 4:
        raise ValueError(f'GCP head input must be 4-D (B x C x H x W), got shape {tuple(x.shape)}')
    if x.shape[1] != in_chs:
        raise ValueError(f'GCP head expects {in_chs} input channels, got {x.shape[1]} (shape {tuple(x.shape)})')


def _make_norm(norm: str, iters: int, power: float) -> nn.Module:
    if norm == 'isqrt':
        return ISqrt(iters)
    if norm == 'mpn':
        return MatrixPower(power)
    return nn.Identity()


class GCPHead(nn.Module):
    """Global covariance pooling head: features B x in_chs x H x W to logits (or the pooled vector)."""

    def __init__(
            self,
            in_chs: int,
            num_classes: int = 1000,
            dim: Optional[int] = 128,
            norm: str = 'isqrt',
            iters: int = 5,
            power: float = 0.5,
            dropcov: bool = False,
            dropcov_scale: float = 10.0,
            drop_rate: float = 0.0,
            pool_type: str = 'gcp',
            bn_eps: float = 1e-5,
            device=None,
            dtype=None,
    ) -> None:
        """
        Args:
            in_chs: Channels of the input features.
            num_classes: Classifier outputs; 0 returns the pooled d(d+1)/2 vector.
            dim: Channels after the 1x1 reduction (128 in TPAMI'23 / DropCov, 256 in iSQRT-COV);
                None pools the input channels directly.
            norm: Matrix normalization: 'isqrt' (Newton-Schulz), 'mpn' (eigen power), 'none'.
            iters: Newton-Schulz iterations for 'isqrt'.
            power: Matrix power for 'mpn'.
            dropcov: Insert DropCov's adaptive channel dropout (training only) before the covariance.
            dropcov_scale: DropCov's rate constant (10 in the paper).
            drop_rate: Dropout on the pooled vector before the classifier.
            pool_type: 'gcp', or '' to return the features unpooled (requires num_classes=0).
            bn_eps: Epsilon of the reduction's BatchNorm.
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if norm not in GCP_NORMS:
            raise ValueError(f'unknown GCP norm {norm!r}, expected one of {GCP_NORMS}')
        if pool_type not in GCP_POOL_TYPES:
            raise ValueError(f'unknown GCP pool_type {pool_type!r}, expected one of {GCP_POOL_TYPES}')
        if dim is not None and dim < 2:
            raise ValueError(f'dim must be >= 2 (or None for no reduction), got {dim}')
        if in_chs < 2:
            raise ValueError(f'in_chs must be >= 2, got {in_chs}')
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f'drop_rate must be in [0, 1), got {drop_rate}')
        self.in_chs = in_chs
        self.dim = dim or in_chs
        self.num_classes = num_classes
        self.pool_type = pool_type
        self.num_features = in_chs

        if dim is None or not pool_type:
            self.reduce = nn.Identity()
        else:
            self.reduce = ConvNormAct(in_chs, dim, 1, act_layer=nn.ReLU, norm_kwargs=dict(eps=bn_eps), **dd)
        use_dropcov = dropcov and pool_type
        self.dropcov = AdaptiveChannelDrop(self.dim, scale=dropcov_scale, **dd) if use_dropcov else nn.Identity()
        self.cov = CovPool()
        self.norm = _make_norm(norm if pool_type else 'none', iters, power)
        self.triu = TriuVec(self.dim, device=device)
        self.drop = nn.Dropout(drop_rate)
        self.fc = self._make_fc(num_classes, **dd)

    @property
    def head_hidden_size(self) -> int:
        """Size of the pooled vector: dim(dim+1)/2, or the input channels when not pooling."""
        return self.dim * (self.dim + 1) // 2 if self.pool_type else self.in_chs

    def _make_fc(self, num_classes: int, device=None, dtype=None) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        return nn.Linear(self.head_hidden_size, num_classes, device=device, dtype=dtype)

    def reset(self, num_classes: int, pool_type: Optional[str] = None, device=None, dtype=None) -> None:
        """Replace the classifier (0: none), keeping the reduction and its weights (and frozen state).

        `pool_type=''` also removes the pooling (reduction, DropCov, normalization): the head then
        passes features through. A removed pooling cannot come back; build a new head for that.
        The new classifier takes `device` / `dtype`, by default those of the head's parameters.
        """
        dd = get_device_dtype(self, device, dtype)
        if pool_type is not None and pool_type != self.pool_type:
            if pool_type not in GCP_POOL_TYPES:
                raise ValueError(f'unknown GCP pool_type {pool_type!r}, expected one of {GCP_POOL_TYPES}')
            if pool_type:
                raise ValueError('this head has no pooling left to restore; build a new GCPHead')
            self.pool_type = pool_type
            self.reduce, self.dropcov, self.norm = nn.Identity(), nn.Identity(), nn.Identity()
        self.num_classes = num_classes
        self.fc = self._make_fc(num_classes, **dd)
        self.fc.train(self.training)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Features B x in_chs x H x W to the pooled vector B x dim(dim+1)/2 in x's dtype."""
        x = self.reduce(x)
        x = self.dropcov(x)
        rep = self.triu(self.norm(self.cov(x)))
        return rep.to(x.dtype)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not self.pool_type:
            if self.num_classes > 0:
                raise ValueError("pool_type='' returns unpooled features and needs num_classes=0")
            return x
        if not torch.jit.is_scripting():
            check_head_input(x, self.in_chs)
        x = self.drop(self.pool(x))
        return x if pre_logits else self.fc(x)
