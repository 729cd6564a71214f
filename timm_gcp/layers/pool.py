"""Global covariance pooling: features to the vectorized, normalized covariance of their channels.

reduce (1x1 conv + BN + ReLU to `dim`) -> [DropCov, training only] -> covariance ->
normalization (`isqrt`: iSQRT-COV, `mpn`: MPN-COV, `none`: DropCov and plain covariance pooling)
-> upper triangle, `dim (dim + 1) / 2` values. This is the pooling of the
fast-MPN-COV, CVPR'20, TPAMI'23 and DropCov ResNets and of So-ViT's patch tokens
(docs/methods.md, "Covariance" to "DropCov").
"""
from typing import Optional

import torch
from torch import nn
from timm.layers import ConvNormAct, LayerType, register_notrace_function

from ._checks import check_int
from .cov import CovPool, TriuVec
from .dropcov import AdaptiveChannelDrop
from .sqrtm import ISqrt, MatrixPower

GCP_NORMS = ('isqrt', 'mpn', 'none')
INPUT_FORMATS = ('NCHW', 'NHWC', 'NLC')


def check_not_wider(dim: int, in_features: int, expand: bool, params: str, alternative: str = '') -> None:
    """Raise a ValueError for a pooling width `dim` above its `in_features` input channels, unless `expand`.

    The covariance of a linear map of C channels has rank <= C: a wider map only adds parameters
    (`params` says how many), so it is built only on request.
    """
    if dim > in_features and not expand:
        raise ValueError(
            f"dim={dim} (a model's gcp_dim) is wider than the {in_features} input channels: a covariance of a linear "
            f"map of {in_features} channels has rank <= {in_features}, so the extra width only adds parameters "
            f"({params}); use dim <= {in_features}{alternative}, or expand=True (gcp_expand=True) to build it anyway")


def check_dim(dim: int, in_features: int, expand: bool = False) -> None:
    """Raise unless `dim` is a reduction `GCPPool` can build from `in_features` channels.

    0 means no reduction; None is refused, since `timm.create_model` drops None arguments (a model's
    `gcp_dim=None` would silently be its default). A `dim` wider than `in_features` is refused unless
    `expand` (`check_not_wider`).
    """
    if dim is None:
        raise TypeError("dim=None is not a GCP reduction width: dim=0 (a model's gcp_dim=0) pools the input "
                        "channels without reduction; timm.create_model drops None arguments")
    check_int(dim, 'dim', 0)
    if dim == 1:
        raise ValueError('dim must be 0 (no reduction) or >= 2, got 1: the covariance of one channel is a scalar')
    reduce_params, per_class = in_features * dim + 2 * dim, dim * (dim + 1) // 2 + 1
    check_not_wider(
        dim, in_features, expand,
        f'{reduce_params:,} in the reduction and {per_class:,} per class in the classifier: '
        f'{reduce_params + 1000 * per_class:,} in all at 1000 classes',
        f' (dim=0: the covariance of the {in_features} channels themselves)')


def min_input_side(feat_stride: int) -> int:
    """The smallest image side whose features at `feat_stride` have 2 positions along it, for a model whose stages
    round up (padded strided convs and pools: ceil(side / stride) = 2). Stages that floor need more (a probe)."""
    return feat_stride + 1


@register_notrace_function
def check_pool_input(x: torch.Tensor, in_features: int, input_fmt: str, min_input: Optional[int] = None) -> None:
    """Raise a ValueError naming the expected layout and width unless `x` fits the pooling.

    A map of one position (or one token) is refused too: its centred covariance is zero, so the
    output would be the same for every input. `min_input`, where given, names the smallest input side.
    """
    ndim = 3 if input_fmt == 'NLC' else 4
    if x.ndim != ndim:
        raise ValueError(f'GCP pooling input must be {ndim}-D ({input_fmt}), got shape {tuple(x.shape)}')
    channels = x.shape[1] if input_fmt == 'NCHW' else x.shape[-1]
    if channels != in_features:
        raise ValueError(
            f'GCP pooling expects {in_features} input channels ({input_fmt}), got {channels} (shape {tuple(x.shape)})')
    if input_fmt == 'NLC':
        if x.shape[1] < 2:
            raise ValueError(
                f'GCP pooling needs at least 2 tokens, got {x.shape[1]} (shape {tuple(x.shape)}): the covariance '
                f'of one token is zero, so the output would be the same for every input')
        return
    h, w = (x.shape[2], x.shape[3]) if input_fmt == 'NCHW' else (x.shape[1], x.shape[2])
    if h * w < 2:
        if min_input:
            fix = f'an input image needs a side of at least {min_input} px (e.g. {min_input}x{min_input})'
        else:
            fix = 'the pooling needs a map of at least 2 positions'
        raise ValueError(
            f'GCP pooling got a {h}x{w} feature map (shape {tuple(x.shape)}): the covariance of one position is '
            f'zero, so the output would be the same for every input; {fix}')


def check_norm_args(
        norm: str,
        iters: Optional[int],
        power: Optional[float],
        dropcov: bool,
        dropcov_scale: Optional[float],
) -> None:
    """Raise a ValueError for a setting that means nothing with the others (None: not given).

    `iters` belongs to norm='isqrt', `power` to norm='mpn' and `dropcov_scale` to dropcov=True;
    given elsewhere they would be ignored silently.
    """
    if iters is not None and norm != 'isqrt':
        raise ValueError(
            f"iters={iters!r} is the Newton-Schulz iteration count of norm='isqrt' and means nothing for "
            f"norm={norm!r}")
    if power is not None and norm != 'mpn':
        detail = ' (iSQRT-COV computes the square root, power 0.5)' if norm == 'isqrt' else ''
        raise ValueError(
            f"power={power!r} is the matrix power of norm='mpn' and means nothing for norm={norm!r}{detail}")
    if dropcov_scale is not None and not dropcov:
        raise ValueError(f'dropcov_scale={dropcov_scale!r} is the rate constant of DropCov and needs dropcov=True')


def _make_norm(norm: str, iters: Optional[int], power: Optional[float]) -> nn.Module:
    if norm == 'isqrt':
        return ISqrt(5 if iters is None else iters)
    if norm == 'mpn':
        return MatrixPower(0.5 if power is None else power)
    return nn.Identity()


class GCPPool(nn.Module):
    """Global covariance pooling of B x C x H x W features (or B x H x W x C, or B x N x C tokens)."""

    def __init__(
            self,
            in_features: int,
            dim: int = 128,
            norm: str = 'isqrt',
            iters: Optional[int] = None,
            power: Optional[float] = None,
            dropcov: bool = False,
            dropcov_scale: Optional[float] = None,
            expand: bool = False,
            bn_eps: float = 1e-5,
            act: LayerType = nn.ReLU,
            input_fmt: str = 'NCHW',
            min_input: Optional[int] = None,
            device=None,
            dtype=None,
    ) -> None:
        """
        Args:
            in_features: Channels of the input features.
            dim: Channels after the 1x1 reduction (128 in TPAMI'23 / DropCov, 256 in iSQRT-COV); 0 pools the
                input channels without reduction. Wider than `in_features` only with `expand` (`check_dim`).
            norm: Matrix normalization: 'isqrt' (Newton-Schulz), 'mpn' (eigen power), 'none'.
            iters: Newton-Schulz iterations of 'isqrt' (None: 5); an error with another norm.
            power: Matrix power of 'mpn' (None: 0.5); an error with another norm.
            dropcov: Insert DropCov's adaptive channel dropout (training only) before the covariance.
            dropcov_scale: DropCov's rate constant, > 0 (None: 10, as in the paper); an error without dropcov.
            expand: Allow a `dim` wider than `in_features` (more parameters, no more rank).
            bn_eps: Epsilon of the reduction's BatchNorm.
            act: Activation of the reduction (ReLU; GCP_Optimization's MobileNetV2 / ShuffleNetV2: 'relu6').
            input_fmt: 'NCHW', 'NHWC' or 'NLC' (tokens, pooled over N as a C x N x 1 map, as So-ViT).
            min_input: The smallest input image side the model gives a map of 2 positions, where the model
                knows it (`min_input_side`, or a probe of the trunk): the error for a one-position map names it.
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if norm not in GCP_NORMS:
            raise ValueError(f'unknown GCP norm {norm!r}, expected one of {GCP_NORMS}')
        if input_fmt not in INPUT_FORMATS:
            raise ValueError(f'unknown input_fmt {input_fmt!r}, expected one of {INPUT_FORMATS}')
        check_norm_args(norm, iters, power, dropcov, dropcov_scale)
        check_int(in_features, 'in_features', 2)
        check_dim(dim, in_features, expand)
        self.in_features = in_features
        self.dim = dim or in_features
        self.input_fmt = input_fmt
        self.min_input = min_input
        self.out_features = self.dim * (self.dim + 1) // 2

        if not dim:
            self.reduce = nn.Identity()
        else:
            self.reduce = ConvNormAct(in_features, dim, 1, act_layer=act, norm_kwargs=dict(eps=bn_eps), **dd)
        if dropcov:
            scale = 10.0 if dropcov_scale is None else dropcov_scale
            self.dropcov = AdaptiveChannelDrop(self.dim, scale=scale, **dd)
        else:
            self.dropcov = nn.Identity()
        self.cov = CovPool()
        self.norm = _make_norm(norm, iters, power)
        self.triu = TriuVec(self.dim, device=device)
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
        """Features to the pooled vector B x dim(dim+1)/2, in the features' dtype."""
        if not torch.jit.is_scripting():
            check_pool_input(x, self.in_features, self.input_fmt, self.min_input)
        x = self.dropcov(self.reduce(self._to_nchw(x)))
        return self.triu(self.norm(self.cov(x))).to(x.dtype)

    def extra_repr(self) -> str:
        return f'in_features={self.in_features}, dim={self.dim}, input_fmt={self.input_fmt}'
