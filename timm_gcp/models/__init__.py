"""Model families with GCP heads; importing a family module registers its models in timm."""
from . import baselines
from . import gcp_resnet
from . import gcp_vit
