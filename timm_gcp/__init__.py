"""timm-gcp: global covariance pooling (iSQRT-COV, DropCov, MPN-COV) models for timm.

Importing this package registers its models in timm's registry; `list_pretrained()` says which of them
load weights with `pretrained=True`, and what: the whole model or the trunk only.
"""
__version__ = '0.1.0'

from . import layers
from . import models
from .models import list_pretrained

__all__ = ['__version__', 'layers', 'list_pretrained', 'models']
