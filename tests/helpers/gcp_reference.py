"""An independent GCP head, from the papers' equations rather than from timm_gcp.layers.

Used to check models whose trunk comes from elsewhere (torchvision's MobileNetV2 and ShuffleNetV2,
as GCP_Optimization builds them) against the authors' architecture description: reduction (1x1
conv, BN, activation) -> the straightforward covariance, Newton-Schulz square root and upper
triangle of `timm_gcp.bench.reference`, in float64 -> Linear.
"""
import torch
from torch import nn

from timm_gcp.bench.reference import straightforward_head


def gcp_logits(features: torch.Tensor, reduction: nn.Module, fc: nn.Linear, iters: int = 5) -> torch.Tensor:
    """Logits of the GCP head on B x C x H x W `features`: `reduction` (conv, BN, act), iSQRT-COV, triu, `fc`."""
    with torch.no_grad():
        return fc(straightforward_head(reduction(features).double(), iters).float())
