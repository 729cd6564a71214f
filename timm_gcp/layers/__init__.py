"""Plain torch building blocks of global covariance pooling (no model code)."""
from .cov import CovPool, TriuVec, covariance, covariance_tokens, triu_vec
from .dropcov import AdaptiveChannelDrop, drop_channels, dropcov_rate
from .head import GCP_POOL_TYPES, GCPHead, check_pool_type, make_fc, reset_pool_type
from .pool import GCP_NORMS, GCPPool, check_pool_input, min_input_side
from .sqrtm import EIGENBASIS_CROSSOVER, ISqrt, MatrixPower, isqrt, mpn
from .token_heads import (
    MultiHeadCrossCovPool, SvPN, TokenGCPHead, check_token_head_input, cross_covariance, svpn, token_drop_mask,
)

__all__ = [
    'AdaptiveChannelDrop', 'CovPool', 'EIGENBASIS_CROSSOVER', 'GCPHead', 'GCPPool', 'GCP_NORMS', 'GCP_POOL_TYPES',
    'ISqrt', 'MatrixPower', 'TriuVec', 'check_pool_input', 'check_pool_type', 'covariance', 'covariance_tokens',
    'drop_channels', 'dropcov_rate', 'isqrt', 'make_fc', 'min_input_side', 'mpn', 'reset_pool_type', 'triu_vec',
    'MultiHeadCrossCovPool', 'SvPN', 'TokenGCPHead', 'check_token_head_input', 'cross_covariance', 'svpn',
    'token_drop_mask',
]
