"""Whether a renamed checkpoint fits a model: one report of its mis-shaped, missing and unexpected tensors.

Every family's `checkpoint_filter_fn` ends with `check_fit`, so a checkpoint of another architecture or
width fails before timm's loader, with every tensor that does not fit named at once. A whole model of
another family (a GCP ResNet's weights given to `gcp_isqrt`, ...) is named as such, from its keys.
"""
from typing import Collection, Dict, Iterable, List, Optional

import torch

__all__ = ['check_fit', 'checkpoint_family']

# the key prefixes that mark a whole model of each family (all of them present), most specific first
_FAMILIES = (
    (('backbone.', 'head.global_pool.'), 'a GCP head on a timm backbone (gcp_isqrt / gcp_dropcov / gcp_mpncov '
                                         'with backbone=..., a <backbone>_<method> preset, mobilenetv2_100_isqrt*)'),
    (('layer4.', 'head.global_pool.'), 'a GCP ResNet (resnet*_isqrt / _dropcov / _mpncov, ms_resnet*)'),
    (('stage4.', 'conv5.', 'head.global_pool.'), 'a GCP ShuffleNetV2 (shufflenetv2_100_isqrt_d256)'),
    (('blocks.', 'head.representation.'), 'a GCP ViT (vit_sot_*, vit_dropcov_*, deit_*_isqrt / _dropcov)'),
)
_GCP_HEADS = ('head.global_pool.', 'head.representation.')
# names listed per kind of misfit when the checkpoint is another family's whole model
_LISTED = 5


def checkpoint_family(keys: Iterable[str]) -> Optional[str]:
    """Which kind of model a state dict's keys belong to: a timm-gcp family, a model without a GCP head, or None."""
    keys = list(keys)
    for prefixes, family in _FAMILIES:
        if all(any(k.startswith(p) for k in keys) for p in prefixes):
            return family
    if keys and not any(k.startswith(_GCP_HEADS) for k in keys):
        return 'a model without a GCP head (a plain timm model\'s weights: trunk weights, not a GCP model\'s)'
    return None


def _listed(keys: List[str], limit: Optional[int]) -> str:
    if limit is None or len(keys) <= limit:
        return ', '.join(keys)
    return f'{", ".join(keys[:limit])} ({len(keys) - limit} more)'


def check_fit(
        state_dict: Dict[str, torch.Tensor],
        model_state_dict: Dict[str, torch.Tensor],
        model_name: str,
        adaptable: Collection[str] = (),
        mismatched: Iterable[str] = (),
        detail: str = '',
) -> None:
    """Raise a ValueError unless every tensor of `state_dict` has the shape of the model's, and none is missing.

    Args:
        state_dict: The checkpoint, renamed to the model's keys.
        model_state_dict: The model's `state_dict()`.
        model_name: Names the model in the message (e.g. its class).
        adaptable: Keys timm's loader adapts after the filter (the classifier to num_classes, the first
            conv to in_chans): neither their shapes nor their presence are checked.
        mismatched: Further mis-shaped tensors the family found, as 'key: checkpoint (...) vs model (...)'.
        detail: Appended to the first line (e.g. the reduction widths of both sides).
    """
    mismatched = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(model_state_dict[k].shape)}'
        for k, v in state_dict.items()
        if k in model_state_dict and k not in adaptable and v.shape != model_state_dict[k].shape
    ] + list(mismatched)
    missing = [k for k in model_state_dict
               if k not in state_dict and k not in adaptable and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state_dict if k not in model_state_dict and k not in adaptable]
    if not (mismatched or missing or unexpected):
        return
    lines = [f'checkpoint does not fit {model_name}' + (f' ({detail})' if detail else '')]
    theirs, ours = checkpoint_family(state_dict), checkpoint_family(model_state_dict)
    limit = None
    if theirs is not None and theirs != ours:
        lines.append(f'the checkpoint is the whole of {theirs}, not of {ours or model_name}: load it into that model '
                     f'(an export folder: timm.create_model(\'local-dir:FOLDER\', pretrained=True))')
        limit = _LISTED
    if mismatched:
        lines.append('mis-shaped: ' + '; '.join(mismatched))
    if missing:
        lines.append('missing: ' + _listed(missing, limit))
    if unexpected:
        lines.append('unexpected: ' + _listed(unexpected, limit))
    raise ValueError('\n'.join(lines))
