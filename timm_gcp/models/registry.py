"""The GCP models in timm's registry: which names are ours, which load weights and what, and their plain twins."""
from fnmatch import fnmatch
from typing import Any, Dict, List, Mapping, Optional

import timm
from timm.models import is_model_pretrained, model_entrypoint, split_model_name_tag

from ..checkpoints.layouts import MINDSPORE_PREFIX
from .gcp_backbone import GENERIC_MODELS, PRESETS
from .releases import RELEASES

__all__ = ['GCP_MODULES', 'PRETRAINED_KINDS', 'UnknownModelError', 'baseline_name', 'generic_names', 'is_gcp_model',
           'list_pretrained', 'missing_backbone', 'model_names', 'preset_names', 'registered_names', 'release_names']

# what `pretrained=True` loads: the whole model, or the trunk only (the GCP head keeps its initialization)
PRETRAINED_KINDS = ('model', 'trunk')


class UnknownModelError(KeyError):
    """A model name that timm's registry does not know; a KeyError, as timm's own lookups raise."""

    def __str__(self) -> str:
        return str(self.args[0])


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


def missing_backbone(name: str, kwargs: Mapping[str, Any], example: str = '') -> Optional[str]:
    """Why the generic model `name` cannot be built with a command's `--model-kwargs` (no `backbone=`), with the
    fixes (`example` follows the option's form); None for any other model or where a backbone is given."""
    if name not in GENERIC_MODELS or 'backbone' in kwargs:
        return None
    return (f"{name} needs backbone=<timm model name>: pass it with --model-kwargs backbone=NAME{example}, or name a "
            f"preset that has its backbone, e.g. {', '.join(preset_names()[:2])}")


def model_names() -> List[str]:
    """The papers' architectures with their tags: every registered name but the generic models and the presets.

    Every one of these builds without arguments (`timm.create_model(name)`), as timm's test suite does.
    """
    skip = set(generic_names()) | set(preset_names())
    return [n for n in registered_names() if split_model_name_tag(n)[0] not in skip]


def release_names() -> List[str]:
    """`arch.tag` names of the authors' weights (`releases.RELEASES`), in registry order.

    One card and one Hub repo each; whether the weights are uploaded is `RELEASES[name].published`, and
    only then does the cfg name the repo (`releases.release_cfgs`).
    """
    return [n for n in registered_names() if n in RELEASES]


def _loads(name: str) -> Optional[str]:
    """What `timm.create_model(name, pretrained=True)` loads (a `PRETRAINED_KINDS` entry), None for nothing."""
    if name in RELEASES:
        return 'model' if RELEASES[name].published else None
    arch, tag = split_model_name_tag(name)
    if arch in PRESETS and tag and is_model_pretrained(f'{PRESETS[arch][0]}.{tag}'):
        return 'trunk'
    return None


def list_pretrained(filter: str = '', kind: Optional[str] = None) -> Dict[str, str]:
    """The registered `arch.tag` names whose `pretrained=True` loads weights, each with what it loads.

    'model': the whole model, from timm-gcp's Hub repo of a published release; these are the GCP names
    `timm.list_pretrained()` lists. 'trunk': a preset's tag, which loads its backbone tag's timm weights
    into the trunk and leaves the GCP head untrained; timm's listing cannot say that, so it leaves them
    out. `filter` is a wildcard pattern as timm's (`'convnext*'`); `kind` keeps one of `PRETRAINED_KINDS`.
    The generic models load the trunk of the `backbone=` they are given (docs/checkpoints.md, "Getting
    the weights").
    """
    if kind is not None and kind not in PRETRAINED_KINDS:
        raise ValueError(f'unknown kind {kind!r}, expected one of {PRETRAINED_KINDS} or None (both)')
    out = {}
    for name in registered_names():
        loads = _loads(name) if not filter or fnmatch(name, filter) else None
        if loads is not None and kind in (None, loads):
            out[name] = loads
    return out


def is_gcp_model(name: str) -> bool:
    """Whether `name` (`arch` or `arch.tag`) is registered by timm_gcp; UnknownModelError if timm has no such model."""
    if not timm.is_model(name):
        raise UnknownModelError(
            f'unknown model {name!r}: timm has no architecture {split_model_name_tag(name)[0]!r} '
            f"(timm.list_models('*pattern*') lists them; timm_gcp's are registered when timm_gcp is imported)")
    return model_entrypoint(name).__module__.startswith('timm_gcp.')


def baseline_name(name: str) -> Optional[str]:
    """timm's plain twin of a model registered by timm_gcp, None for other models or when there is none.

    An unknown name raises UnknownModelError (a KeyError) naming it.

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
