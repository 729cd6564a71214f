"""What every model family shares with its GCP head: the `gcp_*` model arguments, the classifier API and the
prefix-token split of the token models.

A model argument `gcp_X` is the head's argument `X` (`GCPPool` for the map heads, `TokenGCPHead` for the
ViTs), so `--model-kwargs gcp_iters=3` reaches the head from timm's scripts and an exported config.json
rebuilds it. `gcp_dim=0` is no reduction (`timm.create_model` drops None arguments, so None cannot say it),
and a `gcp_dim` wider than the trunk needs `gcp_expand=True` (docs/architectures.md, "Head arguments").
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from timm.layers import get_device_dtype

from ..layers import check_pool_type

__all__ = ['GCP_POOL_ARGS', 'TOKEN_HEAD_ARGS', 'GCPClassifierMixin', 'check_pretrained_arg', 'pop_gcp_args',
           'split_final_tokens', 'split_prefix_tokens']

# `GCPPool` arguments a model takes as `gcp_<name>`
GCP_POOL_ARGS = ('dim', 'norm', 'iters', 'power', 'dropcov', 'dropcov_scale', 'act', 'expand')
# `TokenGCPHead` arguments a model takes as `gcp_<name>`
TOKEN_HEAD_ARGS = ('pool', 'dim', 'norm', 'iters', 'heads', 'qk_chunks', 'token_drop', 'drop', 'expand')


def check_pretrained_arg(variant: str, pretrained: Any) -> None:
    """Raise a TypeError unless `pretrained` is a bool: a string there is a model name in the wrong place.

    `timm.create_model(name, 'convnext_atto')` passes its second positional argument as `pretrained`.
    """
    if isinstance(pretrained, bool):
        return
    fix = ''
    if isinstance(pretrained, str):
        fix = (f'; a backbone goes in backbone={pretrained!r} (the generic GCP models), and a pretrained tag in the '
               f'model name (e.g. {variant}.<tag>) or in pretrained_cfg=...')
    raise TypeError(
        f'{variant}: pretrained must be True or False, got {pretrained!r}; timm.create_model\'s second positional '
        f'argument is pretrained{fix}')


def pop_gcp_args(kwargs: Dict[str, Any], names: Sequence[str] = GCP_POOL_ARGS) -> Dict[str, Any]:
    """Pop the model arguments `gcp_<name>` out of `kwargs`, as the head's arguments `<name>`.

    A `gcp_` argument the head does not take raises a TypeError that lists those it takes.
    """
    unknown = [k for k in kwargs if k.startswith('gcp_') and k[len('gcp_'):] not in names]
    if unknown:
        raise TypeError(f"unknown GCP head argument {', '.join(unknown)}; this model takes "
                        f"{', '.join('gcp_' + n for n in names)}")
    return {name: kwargs.pop(f'gcp_{name}') for name in names if f'gcp_{name}' in kwargs}


class GCPClassifierMixin:
    """timm's classifier API for a model whose `head` is a `GCPHead` (or a `TokenGCPHead`).

    The head resets itself (`GCPHead.reset`), on the model's device and dtype, rebuilding its pooling where
    the width it pools, `head_in_features()`, has changed (after pruning) or where the pooling comes back.
    """

    def head_in_features(self) -> int:
        """The width of the features the head pools."""
        return self.num_features

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> Union[str, nn.Module]:
        return 'head.fc' if name_only else self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier; `global_pool=''` returns unpooled features, None keeps the pooling.

        A classifier on unpooled features (`num_classes > 0`, None) brings the GCP pooling back.
        """
        if global_pool is not None:
            check_pool_type(global_pool, num_classes, 'global_pool')
        self.num_classes = num_classes
        self.head.reset(num_classes, global_pool, in_features=self.head_in_features(), **get_device_dtype(self))
        self.head_hidden_size = self.head.num_features


def split_prefix_tokens(x: torch.Tensor, num_prefix_tokens: int) -> List[torch.Tensor]:
    """B x (P + N) x C tokens as [prefix tokens B x P x C, patch tokens B x N x C], as `forward_features` gives them."""
    return [x[:, :num_prefix_tokens], x[:, num_prefix_tokens:]]


def split_final_tokens(out: Any, num_prefix_tokens: int) -> Union[List[torch.Tensor], Tuple, Dict[str, Any]]:
    """A token backbone's `forward_intermediates` result with its final tokens split by `split_prefix_tokens`.

    `intermediates_only` (a list) is returned as it is, `output_dict` with its 'image_features' split.
    """
    if isinstance(out, dict):
        if 'image_features' in out:
            out['image_features'] = split_prefix_tokens(out['image_features'], num_prefix_tokens)
        return out
    if isinstance(out, list):
        return out
    final, intermediates = out
    return split_prefix_tokens(final, num_prefix_tokens), intermediates
