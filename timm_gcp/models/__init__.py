"""Model families with GCP heads; importing a family module registers its models in timm."""
from . import gcp_resnet
from . import gcp_vit
from . import gcp_backbone
from . import gcp_shufflenet
from .registry import GCP_MODULES, baseline_name, is_gcp_model, list_pretrained, registered_names, release_names

__all__ = [
    'GCP_MODULES', 'baseline_name', 'gcp_backbone', 'gcp_resnet', 'gcp_shufflenet', 'gcp_vit', 'is_gcp_model',
    'list_pretrained', 'registered_names', 'release_names',
]
