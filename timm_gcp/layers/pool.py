"""Global covariance pooling: features to the vectorized, normalized covariance of their channels.

reduce (1x1 conv + BN + ReLU to `reduce_dim`) -> [DropCov, training only] -> covariance ->
normalization (`isqrt`: iSQRT-COV, `mpn`: MPN-COV, `none`: DropCov and plain covariance pooling)
-> upper triangle, `reduce_dim (reduce_dim + 1) / 2` values. This is the pooling of the
fast-MPN-COV, CVPR'20, TPAMI'23 and DropCov ResNets and of So-ViT's patch tokens
(docs/methods.md, "Covariance" to "DropCov").
"""
from typing import Optional

import torch
from torch import nn
from timm.layers import ConvNormAct, register_notrace_function, register_notrace_module

from ._checks import check_int
from .cov import CovPool, TriuVec
from .dropcov import AdaptiveChannelDrop
from .sqrtm import ISqrt, MatrixPower

GCP_NORMS = ('isqrt', 'mpn', 'none')
INPUT_FORMATS = ('NCHW', 'NHWC', 'NLC')

for _leaf in (CovPool, ISqrt, MatrixPower, AdaptiveChannelDrop, TriuVec):
    # the matrix work is shape- and autocast-dependent Python: FX keeps these modules as leaves
    register_notrace_module(_leaf)


@register_notrace_function
def check_pool_input(x: torch.Tensor, in_features: int, input_fmt: str) -> None:
    """Raise a ValueError naming the expected layout and width unless `x` fits the pooling."""
    ndim = 3 if input_fmt == 'NLC' else 4
    if x.ndim != ndim:
        raise ValueError(f'GCP pooling input must be {ndim}-D ({input_fmt}), got shape {tuple(x.shape)}')
    channels = x.shape[1] if input_fmt == 'NCHW' else x.shape[-1]
    if channels != in_features:
        raise ValueError(
            f'GCP pooling expects {in_features} input channels ({input_fmt}), got {channels} (shape {tuple(x.shape)})')


def _make_norm(norm: str, iters: int, power: float) -> nn.Module:
    if norm == 'isqrt':
        return ISqrt(iters)
    if norm == 'mpn':
        return MatrixPower(power)
    return nn.Identity()


class GCPPool(nn.Module):
    """Global covariance pooling of B x C x H x W features (or B x H x W x C, or B x N x C tokens)."""

    def __init__(
            self,
            in_features: int,
            reduce_dim: Optional[int] = 128,
            norm: str = 'isqrt',
            iters: int = 5,
            power: float = 0.5,
            dropcov: bool = False,
            dropcov_scale: float = 10.0,
            bn_eps: float = 1e-5,
            input_fmt: str = 'NCHW',
            device=None,
            dtype=None,
    ) -> None:
        """
        Args:
            in_features: Channels of the input features.
            reduce_dim: Channels after the 1x1 reduction (128 in TPAMI'23 / DropCov, 256 in iSQRT-COV);
                None pools the input channels directly.
            norm: Matrix normalization: 'isqrt' (Newton-Schulz), 'mpn' (eigen power), 'none'.
            iters: Newton-Schulz iterations for 'isqrt'.
            power: Matrix power for 'mpn'.
            dropcov: Insert DropCov's adaptive channel dropout (training only) before the covariance.
            dropcov_scale: DropCov's rate constant (10 in the paper).
            bn_eps: Epsilon of the reduction's BatchNorm.
            input_fmt: 'NCHW', 'NHWC' or 'NLC' (tokens, pooled over N as a C x N x 1 map, as So-ViT).
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if norm not in GCP_NORMS:
            raise ValueError(f'unknown GCP norm {norm!r}, expected one of {GCP_NORMS}')
        if input_fmt not in INPUT_FORMATS:
            raise ValueError(f'unknown input_fmt {input_fmt!r}, expected one of {INPUT_FORMATS}')
        check_int(in_features, 'in_features', 2)
        if reduce_dim is not None:
            check_int(reduce_dim, 'reduce_dim', 2)
        self.in_features = in_features
        self.reduce_dim = reduce_dim or in_features
        self.input_fmt = input_fmt
        self.out_features = self.reduce_dim * (self.reduce_dim + 1) // 2

        if reduce_dim is None:
            self.reduce = nn.Identity()
        else:
            self.reduce = ConvNormAct(in_features, reduce_dim, 1, act_layer=nn.ReLU, norm_kwargs=dict(eps=bn_eps), **dd)
        self.dropcov = AdaptiveChannelDrop(self.reduce_dim, scale=dropcov_scale, **dd) if dropcov else nn.Identity()
        self.cov = CovPool()
        self.norm = _make_norm(norm, iters, power)
        self.triu = TriuVec(self.reduce_dim, device=device)
        for m in self.reduce.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    def _to_nchw(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_fmt == 'NHWC':
            return x.permute(0, 3, 1, 2)
        if self.input_fmt == 'NLC':
            return x.transpose(1, 2).unsqueeze(-1)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features to the pooled vector B x reduce_dim(reduce_dim+1)/2, in the features' dtype."""
        if not torch.jit.is_scripting():
            check_pool_input(x, self.in_features, self.input_fmt)
        x = self.dropcov(self.reduce(self._to_nchw(x)))
        return self.triu(self.norm(self.cov(x))).to(x.dtype)

    def extra_repr(self) -> str:
        return f'in_features={self.in_features}, reduce_dim={self.reduce_dim}, input_fmt={self.input_fmt}'
