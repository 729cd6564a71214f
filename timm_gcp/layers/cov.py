"""Covariance pooling and triangular vectorization.

The covariance is the biased (divide by N), centred second moment of the features, as in
MPN-COV (Li et al., ICCV 2017) and iSQRT-COV (Li et al., CVPR 2018): Sigma = X I_hat X^T with
I_hat = (1/N)(I - 1 1^T / N). It is computed by subtracting the mean instead of building the dense
N x N centring matrix, which gives the same result at a fraction of the cost (docs/methods.md,
"Covariance" and "Triangular vectorization").
"""
from functools import lru_cache

import torch
from torch import nn
from timm.layers import register_notrace_module

from ._checks import check_float, check_rank, check_square, compute_dtype, no_autocast


def _centred_cov(x: torch.Tensor) -> torch.Tensor:
    """Covariance of B x C x N features: (x - mean)(x - mean)^T / N."""
    n = x.shape[-1]
    xc = x - x.mean(dim=-1, keepdim=True)
    return torch.bmm(xc, xc.transpose(1, 2)) / n


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Centred covariance (1/N) of B x C x H x W features over the H*W positions, B x C x C.

    Runs in float32 (float64 stays float64) whatever the autocast state.
    """
    check_float(x, 'x')
    check_rank(x, 4, 'x', 'B x C x H x W')
    with no_autocast(x):
        return _centred_cov(x.flatten(2).to(compute_dtype(x)))


def covariance_tokens(x: torch.Tensor) -> torch.Tensor:
    """Centred covariance (1/N) of B x N x C tokens over the N tokens, B x C x C.

    Runs in float32 (float64 stays float64) whatever the autocast state.
    """
    check_float(x, 'x')
    check_rank(x, 3, 'x', 'B x N x C')
    with no_autocast(x):
        return _centred_cov(x.transpose(1, 2).to(compute_dtype(x)))


@register_notrace_module  # shape- and autocast-dependent Python: FX keeps it a leaf
class CovPool(nn.Module):
    """Module form of `covariance`: B x C x H x W features to their B x C x C covariance."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return _centred_cov(x.flatten(2).to(compute_dtype(x)))
        return covariance(x)


@lru_cache(maxsize=None)
def _triu_flat_index(dim: int, device: torch.device) -> torch.Tensor:
    rows, cols = torch.triu_indices(dim, dim, device=device)
    return rows * dim + cols


def triu_vec(m: torch.Tensor) -> torch.Tensor:
    """Upper triangle of B x C x C matrices, diagonal included, row-major: B x C(C+1)/2.

    The order is (0,0), (0,1), ..., (0,C-1), (1,1), ..., as in fast-MPN-COV's Triuvec (whose
    B x K x 1 output is flattened here). The flat index is built once per size and device.
    """
    check_square(m, 'm')
    index = _triu_flat_index(m.shape[-1], m.device)
    return m.flatten(1).index_select(1, index)


@register_notrace_module
class TriuVec(nn.Module):
    """Module form of `triu_vec` for a fixed size, holding its index as a (non-persistent) buffer."""

    def __init__(self, dim: int, device=None) -> None:
        super().__init__()
        self.dim = dim
        index = torch.empty(dim * (dim + 1) // 2, dtype=torch.long, device=device)
        self.register_buffer('index', index, persistent=False)
        self.init_non_persistent_buffers()

    def init_non_persistent_buffers(self) -> None:
        """(Re)build the index, e.g. after `to_empty()` from the meta device (timm's convention)."""
        rows, cols = torch.triu_indices(self.dim, self.dim, device=self.index.device)
        self.index.copy_(rows * self.dim + cols)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return m.flatten(1).index_select(1, self.index)

    def extra_repr(self) -> str:
        return f'dim={self.dim}'
