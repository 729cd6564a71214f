"""DropCov: adaptive channel dropout before covariance pooling (Wang et al., NeurIPS 2022).

In training, ECA-style channel attention y = softmax(conv1d(GAP(X))) re-weights the features,
X' = X * y + X, and whole channels of X' are dropped with a rate set per mini-batch from how well
the attention agrees with the covariance of X':

    p = clip(1 - (scale / log2 d) * mean_b cos(y_b, rowsum(Sigma'_b)), 0, 1)

At inference the module is the identity: the head is a plain covariance pooling
(docs/methods.md, "DropCov").
"""
import math

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import register_notrace_module

from ._checks import check_float, check_rank
from .cov import covariance


def dropcov_rate(attn: torch.Tensor, cov: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    """DropCov's drop rate: a 0-D tensor from B x d attention and the B x d x d covariance it re-weighted.

    p = clip(1 - (scale / log2 d) * mean_b cos(y_b, r_b), 0, 1), r_b the row sums of Sigma_b.
    Kept as a tensor (no `.item()`), so no host sync.
    """
    dim = attn.shape[-1]
    rho = F.cosine_similarity(attn.to(cov.dtype), cov.sum(-1), dim=-1)
    return (1.0 - scale / math.log2(dim) * rho.mean()).clamp(0.0, 1.0)


def drop_channels(x: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """Zero whole channels of B x C x H x W `x` with probability `rate`, scale survivors by 1 / (1 - rate).

    `rate` is a 0-D tensor; at rate 1 every channel is dropped (and nothing divides by zero).
    """
    keep = 1.0 - rate.to(x.dtype)
    mask = torch.rand(x.shape[0], x.shape[1], 1, 1, device=x.device, dtype=x.dtype) < keep
    return x * (mask.to(x.dtype) / keep.clamp_min(torch.finfo(x.dtype).tiny))


@register_notrace_module  # data-dependent training branch: FX keeps it a leaf
class AdaptiveChannelDrop(nn.Module):
    """DropCov's adaptive channel dropout for B x dim x H x W features; identity in eval mode."""

    def __init__(
            self,
            dim: int,
            kernel_size: int = 3,
            scale: float = 10.0,
            device=None,
            dtype=None,
    ) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f'dim must be >= 2 for DropCov (log2 dim is a divisor), got {dim}')
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            # p = 1 - (scale / log2 dim) * cos: a scale <= 0 gives p >= 1, every channel dropped
            raise ValueError(f'scale (the DropCov rate constant) must be > 0, got {scale!r}')
        self.dim = dim
        self.scale = scale
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False, device=device, dtype=dtype)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax channel attention (ECA with softmax instead of sigmoid), B x dim, rows sum to 1."""
        pooled = x.mean((2, 3)).unsqueeze(1)
        return self.conv(pooled).squeeze(1).softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return self._drop(x)

    @torch.jit.unused
    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        check_float(x, 'x')
        check_rank(x, 4, 'x', 'B x C x H x W')
        if x.shape[1] != self.dim:
            raise ValueError(f'AdaptiveChannelDrop expects {self.dim} channels, got {x.shape[1]}')
        attn = self.attention(x)
        x = x * attn[:, :, None, None] + x
        with torch.no_grad():
            rate = dropcov_rate(attn, covariance(x), self.scale)
        return drop_channels(x, rate)

    def extra_repr(self) -> str:
        return f'dim={self.dim}, scale={self.scale}'
