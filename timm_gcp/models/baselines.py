"""The timm model each GCP model is compared with: the same trunk with timm's average pooling."""
from typing import Optional

import timm
from timm.models import model_entrypoint, split_model_name_tag

__all__ = ['baseline_name', 'is_gcp_model']


def is_gcp_model(name: str) -> bool:
    """Whether `name` (`arch` or `arch.tag`) is registered by timm_gcp."""
    return model_entrypoint(name).__module__.startswith('timm_gcp.')


def baseline_name(name: str) -> Optional[str]:
    """timm's plain twin of a model registered by timm_gcp, None for other models or when there is none.

    It is the longest `_`-separated prefix of the name that is a registered model not from timm_gcp
    (`<backbone>_<method>[_d<dim>][.<tag>]` -> `<backbone>`). Architectures of their own, such as
    `vit_sot_small`, have none.
    """
    if not is_gcp_model(name):
        return None
    parts = split_model_name_tag(name)[0].split('_')
    for end in range(len(parts) - 1, 0, -1):
        prefix = '_'.join(parts[:end])
        if timm.is_model(prefix) and not is_gcp_model(prefix):
            return prefix
    return None
