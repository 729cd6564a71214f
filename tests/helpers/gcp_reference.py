"""An independent GCP head, written from the papers' equations rather than from timm_gcp.layers.

Used to check models whose trunk comes from elsewhere (torchvision's MobileNetV2 and ShuffleNetV2,
as GCP_Optimization builds them) against the authors' architecture description:
reduction (1x1 conv, BN, activation) -> Sigma = X I_hat X^T with the centring matrix
I_hat = (1/N)(I - (1/N) 1 1^T) (N = H W) -> A = Sigma / tr(Sigma) -> coupled Newton-Schulz
Y_{k+1} = Y_k T_k, Z_{k+1} = T_k Z_k, T_k = (3I - Z_k Y_k) / 2 from Y_0 = A, Z_0 = I ->
Y_iters sqrt(tr(Sigma)) -> the upper triangle, row by row -> Linear.
"""
import torch
from torch import nn


def centring_covariance(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    n = h * w
    flat = x.reshape(b, c, n)
    i_hat = (torch.eye(n, dtype=x.dtype) - torch.full((n, n), 1.0 / n, dtype=x.dtype)) / n
    return flat @ i_hat @ flat.transpose(1, 2)


def newton_schulz_sqrt(sigma: torch.Tensor, iters: int) -> torch.Tensor:
    eye = torch.eye(sigma.shape[-1], dtype=sigma.dtype).expand_as(sigma)
    trace = sigma.diagonal(dim1=-2, dim2=-1).sum(-1).view(-1, 1, 1)
    y, z = sigma / trace, eye
    for _ in range(iters):
        t = 0.5 * (3.0 * eye - z @ y)
        y, z = y @ t, t @ z
    return y * trace.sqrt()


def upper_triangle(m: torch.Tensor) -> torch.Tensor:
    rows, cols = torch.triu_indices(m.shape[-1], m.shape[-1])
    return m[:, rows, cols]


def gcp_logits(features: torch.Tensor, reduction: nn.Module, fc: nn.Linear, iters: int = 5) -> torch.Tensor:
    """Logits of the GCP head on B x C x H x W `features`: `reduction` (conv, BN, act), iSQRT-COV, triu, `fc`."""
    with torch.no_grad():
        return fc(upper_triangle(newton_schulz_sqrt(centring_covariance(reduction(features).double()), iters)).float())
