"""The straightforward formulation of the GCP head's matrix work, written from the papers' equations.

What `timm-gcp bench-layers` times the layers against, and what the tests check the layers and the
models against (tests/helpers/gcp_reference.py): torch only, independent of `timm_gcp.layers`. It is
the formulation of the original fast-MPN-COV code: the covariance as X I_hat X^T with a dense N x N
centring matrix I_hat = (I - 1 1^T / N) / N, the coupled Newton-Schulz iteration
Y_{k+1} = Y_k T_k, Z_{k+1} = T_k Z_k, T_k = (3I - Z_k Y_k) / 2 from Y_0 = A = Sigma / tr(Sigma), Z_0 = I,
scaled back by sqrt(tr(Sigma)), and the upper triangle row by row. Each function computes in its
input's dtype and device.
"""
import torch

__all__ = ['dense_centring_covariance', 'naive_eigh_power', 'per_call_triu', 'plain_newton_schulz',
           'straightforward_head']


def dense_centring_covariance(x: torch.Tensor) -> torch.Tensor:
    """X I_hat X^T of B x C x H x W `x` (N = H W), I_hat built per call and repeated per batch (B x N x N)."""
    b, c, h, w = x.shape
    n = h * w
    x = x.reshape(b, c, n)
    dd = dict(device=x.device, dtype=x.dtype)
    i_hat = (torch.eye(n, **dd) - torch.full((n, n), 1.0 / n, **dd)) / n
    return x.bmm(i_hat.repeat(b, 1, 1)).bmm(x.transpose(1, 2))


def plain_newton_schulz(cov: torch.Tensor, iters: int) -> torch.Tensor:
    """Sigma^(1/2) by `iters` (>= 1) coupled Newton-Schulz steps: the original iSQRT forward (3I per batch,
    the trace as 1/3 sum(A o 3I)), differentiated by autograd."""
    b, c, _ = cov.shape
    i3 = 3.0 * torch.eye(c, device=cov.device, dtype=cov.dtype).expand(b, c, c)
    norm_a = (cov * i3).sum((1, 2)) / 3.0
    a = cov / norm_a.view(b, 1, 1)
    zy = 0.5 * (i3 - a)
    if iters == 1:
        return a.bmm(zy) * norm_a.sqrt().view(b, 1, 1)
    y, z = a.bmm(zy), zy
    for _ in range(iters - 2):
        zy = 0.5 * (i3 - z.bmm(y))
        y, z = y.bmm(zy), zy.bmm(z)
    return 0.5 * y.bmm(i3 - z.bmm(y)) * norm_a.sqrt().view(b, 1, 1)


def per_call_triu(m: torch.Tensor) -> torch.Tensor:
    """The upper triangle of B x C x C `m`, row by row, with the index built by `nonzero()` on every call."""
    c = m.shape[-1]
    index = torch.ones(c, c, device=m.device).triu().flatten().nonzero().squeeze(1)
    return m.flatten(1)[:, index]


def naive_eigh_power(cov: torch.Tensor, power: float = 0.5) -> torch.Tensor:
    """Sigma^p through torch.linalg.eigh and its autograd backward."""
    evals, evecs = torch.linalg.eigh(cov)
    return evecs @ torch.diag_embed(evals.clamp_min(0).pow(power)) @ evecs.transpose(1, 2)


def straightforward_head(x: torch.Tensor, iters: int = 5) -> torch.Tensor:
    """The head's matrix work on B x C x H x W `x`: covariance, Newton-Schulz square root, upper triangle."""
    return per_call_triu(plain_newton_schulz(dense_centring_covariance(x), iters))
