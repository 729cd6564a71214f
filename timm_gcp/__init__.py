"""timm-gcp: global covariance pooling (iSQRT-COV, DropCov, MPN-COV) models for timm.

Importing this package registers its models in timm's registry.
"""
__version__ = '0.1.0'

from . import layers
from . import models

__all__ = ['__version__', 'layers', 'models']
