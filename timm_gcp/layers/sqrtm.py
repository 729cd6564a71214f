"""Matrix square roots of covariance matrices.

* `isqrt`: iSQRT-COV (Li et al., CVPR 2018), the coupled Newton-Schulz iteration with trace
  pre-normalization and sqrt-trace post-compensation. Only matrix products, so it is fast on GPUs
  and differentiated by plain autograd (which equals the paper's hand-written backward).
* `mpn`: MPN-COV (Li et al., ICCV 2017), the exact matrix power by eigen-decomposition, with a
  backward that stays finite on rank-deficient and repeated-eigenvalue inputs.
"""
from typing import Tuple

import torch
from torch import nn

from ._checks import check_square, compute_dtype, no_autocast


def _trace(m: torch.Tensor) -> torch.Tensor:
    return m.diagonal(dim1=-2, dim2=-1).sum(-1)


def _newton_schulz(a: torch.Tensor, iters: int) -> torch.Tensor:
    """Y_iters of the coupled iteration Y_k = Y_{k-1} T_k, Z_k = T_k Z_{k-1}, T_k = (3I - Z_{k-1} Y_{k-1}) / 2.

    Y_0 = A, Z_0 = I. As in fast-MPN-COV, the first step is written out (Z_0 = I) and the last step
    forms only Y. `baddbmm` computes T_k = 1.5 I - 0.5 Z Y in one fused product.
    """
    eye15 = 1.5 * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    z = eye15 - 0.5 * a
    y = torch.bmm(a, z)
    if iters == 1:
        return y
    for _ in range(iters - 2):
        t = torch.baddbmm(eye15, z, y, alpha=-0.5)
        y = torch.bmm(y, t)
        z = torch.bmm(t, z)
    return torch.bmm(y, torch.baddbmm(eye15, z, y, alpha=-0.5))


def _isqrt(cov: torch.Tensor, iters: int, eps: float) -> torch.Tensor:
    trace = _trace(cov).clamp_min(eps)[:, None, None]
    return _newton_schulz(cov / trace, iters) * trace.sqrt()


def _check_iters(iters: int) -> None:
    if isinstance(iters, bool) or not isinstance(iters, int):
        raise TypeError(f'iters must be an int, got {type(iters).__name__}')
    if iters < 1:
        raise ValueError(f'iters must be >= 1, got {iters}')


def isqrt(cov: torch.Tensor, iters: int = 5, eps: float = 1e-5) -> torch.Tensor:
    """Approximate square root of B x C x C covariances by `iters` Newton-Schulz steps (iSQRT-COV).

    sqrt(Sigma) ~= sqrt(tr Sigma) * NS_iters(Sigma / tr Sigma). The trace is clamped at `eps`, so an
    all-zero covariance gives a zero output instead of NaN. Runs in float32 (float64 stays float64)
    whatever the autocast state. Five iterations are what every published model uses; the result is
    then deliberately approximate (a few percent from the exact root).
    """
    check_square(cov, 'cov')
    _check_iters(iters)
    with no_autocast(cov):
        return _isqrt(cov.to(compute_dtype(cov)), iters, eps)


class ISqrt(nn.Module):
    """Module form of `isqrt`."""

    def __init__(self, iters: int = 5, eps: float = 1e-5) -> None:
        super().__init__()
        _check_iters(iters)
        self.iters = iters
        self.eps = eps

    def forward(self, cov: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return _isqrt(cov.to(compute_dtype(cov)), self.iters, self.eps)
        return isqrt(cov, self.iters, self.eps)

    def extra_repr(self) -> str:
        return f'iters={self.iters}'


def _power_floor(evals: torch.Tensor, eps: float) -> torch.Tensor:
    """Smallest eigenvalue used: `eps` times the mean eigenvalue, and above 0 for an all-zero input."""
    return (evals.mean(-1, keepdim=True) * eps).clamp_min(1e-30)


def _eig_power(
        cov: torch.Tensor,
        power: float,
        eps: float,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eigenvalues, eigenvectors, eigenvalue floor and floored eigenvalues raised to `power`."""
    evals, evecs = torch.linalg.eigh(cov)
    floor = _power_floor(evals, eps)
    return evals, evecs, floor, torch.maximum(evals, floor).pow(power)


def _compose(evecs: torch.Tensor, fvals: torch.Tensor) -> torch.Tensor:
    return (evecs * fvals.unsqueeze(-2)) @ evecs.transpose(-2, -1)


class _MatrixPower(torch.autograd.Function):
    """U max(L, floor)^p U^T for symmetric input, with the Daleckii-Krein (divided difference) backward.

    dSigma = U (F o sym(U^T G U)) U^T with F_ij = (f(l_i) - f(l_j)) / (l_i - l_j) and F_ii = f'(l_i).
    Unlike the 1/(l_i - l_j) form of autograd's eigh backward, this is bounded for repeated
    eigenvalues; the floor bounds f' = p l^(p-1) on rank-deficient input.
    """

    @staticmethod
    def forward(ctx, cov: torch.Tensor, power: float, eps: float) -> torch.Tensor:
        evals, evecs, floor, fvals = _eig_power(cov, power, eps)
        ctx.save_for_backward(evals, evecs, floor, fvals)
        ctx.power = power
        return _compose(evecs, fvals)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        evals, evecs, floor, fvals = ctx.saved_tensors
        power = ctx.power
        active = evals > floor
        deriv = torch.where(active, power * torch.maximum(evals, floor).pow(power - 1), torch.zeros_like(evals))
        diff = evals.unsqueeze(-1) - evals.unsqueeze(-2)
        fdiff = fvals.unsqueeze(-1) - fvals.unsqueeze(-2)
        # where two eigenvalues (nearly) coincide the divided difference becomes the derivative
        close = diff.abs() <= 1e3 * torch.finfo(evals.dtype).eps * evals.abs().amax(-1, keepdim=True).unsqueeze(-1)
        safe_diff = torch.where(close, torch.ones_like(diff), diff)
        mean_deriv = 0.5 * (deriv.unsqueeze(-1) + deriv.unsqueeze(-2))
        kernel = torch.where(close, mean_deriv, fdiff / safe_diff)
        inner = evecs.transpose(-2, -1) @ grad @ evecs
        inner = 0.5 * (inner + inner.transpose(-2, -1))
        return evecs @ (kernel * inner) @ evecs.transpose(-2, -1), None, None


def _check_power(power: float) -> None:
    if not isinstance(power, (int, float)) or isinstance(power, bool) or not 0 < power <= 1:
        raise ValueError(f'power must be a number in (0, 1], got {power!r}')


def mpn(cov: torch.Tensor, power: float = 0.5, eps: float = 1e-4) -> torch.Tensor:
    """Exact matrix power Sigma^p of B x C x C covariances by eigen-decomposition (MPN-COV).

    Eigenvalues below `eps` times the mean eigenvalue are raised from that floor, which keeps the
    gradient finite and bounded when N < C (a rank-deficient covariance, the normal case at 7x7).
    Runs in float32 (float64 stays float64) whatever the autocast state.
    """
    check_square(cov, 'cov')
    _check_power(power)
    with no_autocast(cov):
        cov = cov.to(compute_dtype(cov))
        return _MatrixPower.apply(0.5 * (cov + cov.transpose(-2, -1)), float(power), eps)


class MatrixPower(nn.Module):
    """Module form of `mpn`."""

    def __init__(self, power: float = 0.5, eps: float = 1e-4) -> None:
        super().__init__()
        _check_power(power)
        self.power = power
        self.eps = eps

    def forward(self, cov: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            # TorchScript cannot call autograd Functions: forward is the same, backward is eigh's own
            _, evecs, _, fvals = _eig_power(cov.to(compute_dtype(cov)), self.power, self.eps)
            return _compose(evecs, fvals)
        return mpn(cov, self.power, self.eps)

    def extra_repr(self) -> str:
        return f'power={self.power}'
