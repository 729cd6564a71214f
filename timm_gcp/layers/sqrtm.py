"""Matrix square roots of covariance matrices.

* `isqrt`: iSQRT-COV (Li et al., CVPR 2018), the coupled Newton-Schulz iteration with trace
  pre-normalization and sqrt-trace post-compensation. On GPUs and in traced or exported graphs it is
  matrix products with plain autograd through them (equal to the paper's hand-written backward); in
  eager CPU code, where one eigen-decomposition costs less than the products, the same map is
  applied to the eigenvalues and differentiated in the eigenbasis (`_NewtonSchulzEig`).
* `mpn`: MPN-COV (Li et al., ICCV 2017), the exact matrix power by eigen-decomposition, with a
  backward that stays finite on rank-deficient and repeated-eigenvalue input.

Both backward passes use the Daleckii-Krein formula for a symmetric A = U diag(l) U^T and a scalar
function f applied to it: dL/dA = U (F o sym(U^T G U)) U^T with F_ij = (f(l_i) - f(l_j)) / (l_i - l_j)
and F_ii = f'(l_i). Unlike autograd's eigh backward (1 / (l_i - l_j) terms) it is bounded for
equal eigenvalues. Details: docs/methods.md, "iSQRT-COV" and "MPN-COV".
"""
from typing import Dict, Optional, Tuple

import torch
from torch import nn
from timm.layers import register_notrace_module

from ._checks import check_int, check_square, compute_dtype, no_autocast


def _trace(m: torch.Tensor) -> torch.Tensor:
    return m.diagonal(dim1=-2, dim2=-1).sum(-1)


def _divided_differences(evals: torch.Tensor, fvals: torch.Tensor, dvals: torch.Tensor) -> torch.Tensor:
    """F_ij = (f_i - f_j) / (l_i - l_j), the mean of f'(l_i) and f'(l_j) where l_i == l_j (to 1e-12).

    In float64: the float32 eigenvalues differ exactly there, and the quotient does not cancel.
    """
    lam, f = evals.double(), fvals.double()
    diff = lam.unsqueeze(-1) - lam.unsqueeze(-2)
    scale = lam.abs().amax(-1, keepdim=True).unsqueeze(-1)
    close = diff.abs() <= 1e-12 * scale + 1e-300
    # in place, and back to the input dtype at once: these B x C x C tensors dominate the backward's memory
    quotient = (f.unsqueeze(-1) - f.unsqueeze(-2)).div_(diff.masked_fill_(close, 1.0)).to(evals.dtype)
    del diff
    d = dvals.to(evals.dtype)
    mean_deriv = (d.unsqueeze(-1) + d.unsqueeze(-2)).mul_(0.5)
    return torch.where(close, mean_deriv, quotient, out=quotient)


def _eigenbasis_grad(evecs: torch.Tensor, kernel: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """U (kernel o sym(U^T G U)) U^T: the gradient of a matrix function for symmetric perturbations."""
    inner = evecs.transpose(-2, -1) @ grad @ evecs
    inner = (inner + inner.transpose(-2, -1)).mul_(kernel).mul_(0.5)
    return evecs @ inner @ evecs.transpose(-2, -1)


def _compose(evecs: torch.Tensor, fvals: torch.Tensor) -> torch.Tensor:
    return (evecs * fvals.unsqueeze(-2)) @ evecs.transpose(-2, -1)


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


def _newton_schulz_scalar(evals: torch.Tensor, iters: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The Newton-Schulz map on each eigenvalue and its derivative (forward-mode), float64."""
    lam = evals.double()
    z, dz = 1.5 - 0.5 * lam, torch.full_like(lam, -0.5)
    y, dy = lam * z, z + lam * dz
    for _ in range(iters - 1):
        zy, dzy = z * y, dz * y + z * dy
        t, dt = 1.5 - 0.5 * zy, -0.5 * dzy
        z, dz = t * z, dt * z + t * dz
        y, dy = y * t, dy * t + y * dt
    return y, dy


class _NewtonSchulzEig(torch.autograd.Function):
    """`_newton_schulz` evaluated in A's eigenbasis, with the Daleckii-Krein backward.

    For symmetric A = U diag(l) U^T every iterate is a polynomial in A, so Y_K = U diag(f(l)) U^T with
    f the scalar Newton-Schulz map: the same output in exact arithmetic. One eigh serves forward and
    backward; U and three vectors are saved. The gradient is the one for symmetric perturbations, so
    the input must be symmetric (`isqrt` symmetrizes it first).
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, iters: int) -> torch.Tensor:
        evals, evecs = _eigh(a)
        fvals, dvals = _newton_schulz_scalar(evals, iters)
        ctx.save_for_backward(evals, evecs, fvals, dvals)
        return _compose(evecs, fvals.to(a.dtype))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        evals, evecs, fvals, dvals = ctx.saved_tensors
        return _eigenbasis_grad(evecs, _divided_differences(evals, fvals, dvals), grad), None


def _eager() -> bool:
    """False while scripting, jit-tracing, compiling, exporting (torch.export, ONNX): those need matrix products.

    FX symbolic tracing never gets here: `ISqrt` is an FX leaf, and `isqrt` refuses a Proxy.
    """
    return not (
        torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )


def _eigh(a: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """`torch.linalg.eigh`, done again in float64 where a CPU decomposition comes back non-finite (eager code).

    LAPACK's float32 driver can return NaN without an error on matrices of high nullity, such as the
    d x d covariance of fewer than d positions with channels a ReLU zeroed (docs/methods.md, "iSQRT-COV").
    A traced, compiled or exported graph keeps the one decomposition: it cannot branch on the values.
    """
    evals, evecs = torch.linalg.eigh(a)
    if not torch.jit.is_scripting():  # TorchScript compiles this branch away
        if a.device.type == 'cpu' and a.dtype != torch.float64 and _eager() and not bool(
                torch.isfinite(evals).all() & torch.isfinite(evecs).all()):
            evals, evecs = torch.linalg.eigh(a.double())
            evals, evecs = evals.to(a.dtype), evecs.to(a.dtype)
    return evals, evecs


# Where one eigh beats the Newton-Schulz products in eager CPU code, measured (docs/methods.md, "iSQRT-COV"):
# (smallest C, fewest iterations) pairs, with a gradient ('train') and without ('eval'); any pair that holds selects it.
# Training replaces about 9 (iters - 1) products with eigh and five products, inference about 3 (iters - 1) with
# eigh and one; eigh costs relatively more on small matrices.
EIGENBASIS_CROSSOVER: Dict[str, Tuple[Tuple[int, int], ...]] = {
    'train': ((48, 4), (192, 3)),
    'eval': ((192, 5), (128, 7)),
}


def _eigenbasis_faster(dim: int, iters: int, needs_grad: bool) -> bool:
    """Whether `EIGENBASIS_CROSSOVER` selects the eigenbasis for C = `dim` and `iters` iterations."""
    return any(dim >= d and iters >= k for d, k in EIGENBASIS_CROSSOVER['train' if needs_grad else 'eval'])


def _trace_normalize(cov: torch.Tensor, eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pre-normalization A = Sigma / tr(Sigma) and the post-compensation factor sqrt(tr(Sigma))."""
    trace = _trace(cov).clamp_min(eps)[:, None, None]
    return cov / trace, trace.sqrt()


def _isqrt(cov: torch.Tensor, iters: int, eps: float) -> torch.Tensor:
    a, scale = _trace_normalize(cov, eps)
    return _newton_schulz(a, iters) * scale


def isqrt(
        cov: torch.Tensor,
        iters: int = 5,
        eps: float = 1e-5,
        eigenbasis: Optional[bool] = None,
) -> torch.Tensor:
    """Approximate square root of symmetric B x C x C covariances by Newton-Schulz steps (iSQRT-COV).

    sqrt(Sigma) ~= sqrt(tr Sigma) * NS_iters(Sigma / tr Sigma). The trace is clamped at `eps`, so an
    all-zero covariance gives a zero output instead of NaN. Runs in float32 (float64 stays float64)
    whatever the autocast state. Five iterations are what every published model uses; the result is
    then deliberately approximate (0.06 relative to the exact root at C = 16, 0.35 at C = 128:
    docs/methods.md, "iSQRT-COV").

    `eigenbasis` picks how: True applies the same map to the eigenvalues of the symmetrized input
    (one eigh, shared by forward and backward), False runs the matrix products (autograd backward).
    None (default) takes the eigenbasis only in eager CPU code above the measured crossover
    (`EIGENBASIS_CROSSOVER`). GPUs, TorchScript, jit tracing, torch.compile, torch.export and ONNX
    export always get the products (FX keeps `ISqrt` as a leaf that runs as eager code).
    """
    check_square(cov, 'cov')
    check_int(iters, 'iters', 1)
    if eigenbasis is None:
        eigenbasis = cov.device.type == 'cpu' and _eager() and _eigenbasis_faster(
            cov.shape[-1], iters, torch.is_grad_enabled() and cov.requires_grad)
    with no_autocast(cov):
        cov = cov.to(compute_dtype(cov))
        if not eigenbasis:
            return _isqrt(cov, iters, eps)
        a, scale = _trace_normalize(0.5 * (cov + cov.transpose(-2, -1)), eps)
        return _NewtonSchulzEig.apply(a, iters) * scale


@register_notrace_module  # shape- and autocast-dependent Python: FX keeps it a leaf
class ISqrt(nn.Module):
    """Module form of `isqrt`."""

    def __init__(self, iters: int = 5, eps: float = 1e-5) -> None:
        super().__init__()
        check_int(iters, 'iters', 1)
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
    evals, evecs = _eigh(cov)
    floor = _power_floor(evals, eps)
    return evals, evecs, floor, torch.maximum(evals, floor).pow(power)


class _MatrixPower(torch.autograd.Function):
    """U max(L, floor)^p U^T for symmetric input, with the Daleckii-Krein backward.

    f(l) = max(l, floor)^p has f' = p l^(p-1) above the floor and 0 below it, so the floor bounds
    the gradient on rank-deficient input.
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
        active = evals > floor
        dvals = torch.where(active, ctx.power * fvals / torch.maximum(evals, floor), torch.zeros_like(evals))
        return _eigenbasis_grad(evecs, _divided_differences(evals, fvals, dvals), grad), None, None


def _check_power(power: float) -> None:
    if not isinstance(power, (int, float)) or isinstance(power, bool) or not 0 < power <= 1:
        raise ValueError(f'power must be a number in (0, 1], got {power!r}')


def mpn(cov: torch.Tensor, power: float = 0.5, eps: float = 1e-4) -> torch.Tensor:
    """Exact matrix power Sigma^p of symmetric B x C x C covariances by eigen-decomposition (MPN-COV).

    Eigenvalues below `eps` times the mean eigenvalue are raised from that floor, which keeps the
    gradient finite and bounded when N < C (a rank-deficient covariance, the normal case at 7x7).
    Runs in float32 (float64 stays float64) whatever the autocast state.
    """
    check_square(cov, 'cov')
    _check_power(power)
    with no_autocast(cov):
        cov = cov.to(compute_dtype(cov))
        return _MatrixPower.apply(0.5 * (cov + cov.transpose(-2, -1)), float(power), eps)


@register_notrace_module
class MatrixPower(nn.Module):
    """Module form of `mpn`."""

    def __init__(self, power: float = 0.5, eps: float = 1e-4) -> None:
        super().__init__()
        _check_power(power)
        self.power = power
        self.eps = eps

    def forward(self, cov: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            # TorchScript cannot call autograd Functions: same forward, eigh's own backward
            _, evecs, _, fvals = _eig_power(cov.to(compute_dtype(cov)), self.power, self.eps)
            return _compose(evecs, fvals)
        return mpn(cov, self.power, self.eps)

    def extra_repr(self) -> str:
        return f'power={self.power}'
