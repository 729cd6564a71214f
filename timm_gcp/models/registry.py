"""The GCP models in timm's registry: which names are ours, which have weights, and their plain twins."""
from typing import List, Optional

import timm
from timm.models import model_entrypoint, split_model_name_tag

from ..checkpoints.layouts import MINDSPORE_PREFIX
from .gcp_backbone import GENERIC_MODELS, PRESETS

__all__ = ['GCP_MODULES', 'baseline_name', 'generic_names', 'is_gcp_model', 'model_names', 'preset_names',
           'registered_names', 'release_names']

# the model family modules; timm keys its module listing on the last part of the module name
GCP_MODULES = ('gcp_resnet', 'gcp_vit', 'gcp_backbone', 'gcp_shufflenet')


def registered_names() -> List[str]:
    """Every registered name of the GCP families, with its tags (untagged archs as bare names)."""
    return [n for module in GCP_MODULES for n in timm.list_models(module=module, include_tags=True)]


def generic_names() -> List[str]:
    """`gcp_isqrt`, `gcp_dropcov`, `gcp_mpncov`: a GCP head on the timm backbone the caller names (`backbone=`)."""
    return list(GENERIC_MODELS)


def preset_names() -> List[str]:
    """`<backbone>_<method>` architectures on timm backbones (one tag per backbone tag; no GCP weights of their own)."""
    return list(PRESETS)


def model_names() -> List[str]:
    """The papers' architectures with their tags: every registered name but the generic models and the presets.

    Every one of these builds without arguments (`timm.create_model(name)`), as timm's test suite does.
    """
    skip = set(generic_names()) | set(preset_names())
    return [n for n in registered_names() if split_model_name_tag(n)[0] not in skip]


def release_names() -> List[str]:
    """`arch.tag` names of the authors' weights (`releases.RELEASES`), whose cfgs name their Hub repo.

    One card and one Hub repo each; whether the weights are uploaded is `RELEASES[name].published`.
    """
    return [n for module in GCP_MODULES for n in timm.list_models(module=module, pretrained=True, include_tags=True)]


def is_gcp_model(name: str) -> bool:
    """Whether `name` (`arch` or `arch.tag`) is registered by timm_gcp."""
    return model_entrypoint(name).__module__.startswith('timm_gcp.')


def baseline_name(name: str) -> Optional[str]:
    """timm's plain twin of a model registered by timm_gcp, None for other models or when there is none.

    It is the longest `_`-separated prefix of the name that is a registered model not from timm_gcp
    (`<backbone>_<method>[_d<dim>][.<tag>]` -> `<backbone>`), the MindSpore models' too
    (`ms_resnet50_isqrt` -> `resnet50`, timm's PyTorch numerics). Architectures of their own, such
    as `vit_sot_small`, have none.
    """
    if not is_gcp_model(name):
        return None
    parts = split_model_name_tag(name)[0].removeprefix(MINDSPORE_PREFIX).split('_')
    for end in range(len(parts) - 1, 0, -1):
        prefix = '_'.join(parts[:end])
        if timm.is_model(prefix) and not is_gcp_model(prefix):
            return prefix
    return None
