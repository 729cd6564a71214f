"""Plain torch building blocks of global covariance pooling (no model code)."""
from .cov import CovPool, TriuVec, covariance, covariance_tokens, triu_vec
from .dropcov import AdaptiveChannelDrop, drop_channels, dropcov_rate
from .head import GCP_NORMS, GCPHead, check_head_input
from .sqrtm import ISqrt, MatrixPower, isqrt, mpn
from .token_heads import (
    MultiHeadCrossCovPool, SvPN, TokenCovPool, TokenGCPHead, check_token_head_input, cross_covariance, svpn,
    token_drop_mask,
)

__all__ = [
    'AdaptiveChannelDrop', 'CovPool', 'GCPHead', 'GCP_NORMS', 'ISqrt', 'MatrixPower', 'TriuVec',
    'check_head_input', 'covariance', 'covariance_tokens', 'drop_channels', 'dropcov_rate', 'isqrt', 'mpn',
    'triu_vec',
    'MultiHeadCrossCovPool', 'SvPN', 'TokenCovPool', 'TokenGCPHead', 'check_token_head_input',
    'cross_covariance', 'svpn', 'token_drop_mask',
]
