"""Whether a renamed checkpoint fits a model: one report of its mis-shaped, missing and unexpected tensors.

Every family's `checkpoint_filter_fn` ends with `check_fit`, so a checkpoint of another architecture or
width fails before timm's loader, with every tensor that does not fit named at once.
"""
from typing import Collection, Dict, Iterable

import torch

__all__ = ['check_fit']


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
    if mismatched:
        lines.append('mis-shaped: ' + '; '.join(mismatched))
    if missing:
        lines.append('missing: ' + ', '.join(missing))
    if unexpected:
        lines.append('unexpected: ' + ', '.join(unexpected))
    raise ValueError('\n'.join(lines))
