"""GCP heads on any timm backbone: `gcp_isqrt`, `gcp_dropcov`, `gcp_mpncov` and the `<backbone>_<method>` presets.

`timm.create_model('gcp_isqrt', backbone='convnext_tiny.fb_in22k', pretrained=True, num_classes=200)`
builds the backbone with timm (no classifier, no pooling) and puts `GCPHead` on its unpooled features:
NCHW maps (most CNNs), NHWC maps (Swin) or tokens B x N x C, whose class / register tokens are left out
of the covariance (docs/backbones.md).

`pretrained=True` loads the backbone tag's timm weights into the trunk, and the model's pretrained cfg is
that tag's, so timm's data config reads it; weights of a whole GCP model (an export, a file, an authors'
release tag) load into the whole model. Every check of the backbone (name, tag, feature layout, output
stride) runs on a meta-device copy, before any weights are created.

Presets: each of `PRESET_BACKBONES` gets `<backbone>_isqrt` and `<backbone>_dropcov`, with one tag per
tag of the backbone. GCP_Optimization's MobileNetV2 (CVPR'20) is `mobilenetv2_100_isqrt[_d256]`.
"""
import difflib
import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import timm
import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import register_notrace_function
from huggingface_hub import constants
from timm.models import PretrainedCfg, build_model_with_cfg, generate_default_cfgs, get_arch_pretrained_cfgs, \
    get_pretrained_cfg, is_model, model_entrypoint, register_model, split_model_name_tag

from ..checkpoints import MOBILENETV2_RENAMES, check_fit, rename_key
from ..layers import GCPHead, check_pool_type
from ._head import GCPClassifierMixin, check_pretrained_arg, pop_gcp_args, split_final_tokens, split_prefix_tokens
from .releases import RELEASES, WeightsUnavailableError, check_pretrained_source, hub_cached, release_cfgs

__all__ = [
    'BackboneArgumentError', 'BackboneError', 'GCPBackboneModel', 'GCPTokenModel', 'GCP_METHODS', 'GENERIC_MODELS',
    'PRESETS', 'PRESET_BACKBONES', 'TrunkLayout', 'backbone_tags', 'check_input_side', 'checkpoint_filter_fn',
    'preset_name', 'probe_backbone', 'resolve_backbone', 'trunk_cfg',
]

# the head settings of each method, as the GCP ResNets name them
GCP_METHODS: Dict[str, Dict[str, Any]] = {
    'isqrt': dict(gcp_norm='isqrt'),
    'dropcov': dict(gcp_norm='none', gcp_dropcov=True),
    'mpncov': dict(gcp_norm='mpn'),
}
PRESET_METHODS = ('isqrt', 'dropcov')
# the generic models, a method each, on the backbone the caller names
GENERIC_MODELS = {f'gcp_{method}': method for method in GCP_METHODS}

# one line per backbone: `<backbone>_isqrt` and `<backbone>_dropcov`, with the backbone's pretrained tags
PRESET_BACKBONES = (
    'convnext_tiny',
    'convnext_small',
    'efficientnet_b0',
    'efficientnet_b3',
    'regnety_040',
    'mobilenetv3_large_100',
    'swin_tiny_patch4_window7_224',
    'vit_small_patch16_224',
    'vit_base_patch16_224',
)

# pretrained-cfg fields that say where weights are: the trunk's weights are not the GCP model's
_WEIGHT_FIELDS = ('url', 'file', 'state_dict', 'hf_hub_id', 'hf_hub_filename', 'source', 'custom_load',
                  'architecture', 'tag', 'paper_ids', 'paper_name', 'notes', 'description', 'origin_url')


class BackboneError(ValueError):
    """A backbone a GCP head cannot be put on: unknown name or tag, features of another shape, an unmet option."""


class BackboneArgumentError(BackboneError, TypeError):
    """An argument the backbone does not take: a TypeError too, as Python's for an unexpected keyword argument."""


@dataclass(frozen=True)
class TrunkLayout:
    """The backbone's unpooled head output (`forward_head(..., pre_logits=True)`), from a meta-device forward."""
    input_fmt: str  # 'NCHW', 'NHWC' or 'NLC' (tokens)
    width: int  # channels (or token width) the GCP head pools
    num_prefix_tokens: int  # class / register tokens before the patch tokens ('NLC')
    feat_size: Optional[Tuple[int, int]]  # H x W of the map at the probe input ('NCHW' / 'NHWC')
    reduction: Optional[int]  # input side / map side ('NCHW' / 'NHWC')
    num_levels: int  # entries of the backbone's feature_info
    min_input: Optional[int]  # the smallest input side whose map has 2 positions along it ('NCHW' / 'NHWC')


def preset_name(backbone: str, method: str, dim: Optional[int] = None) -> str:
    """`<backbone>_<method>[_d<dim>]`, the GCP ResNets' naming."""
    return f'{backbone}_{method}' + (f'_d{dim}' if dim else '')


def _close_matches(name: str) -> str:
    matches = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    return f'; close matches: {", ".join(matches)}' if matches else ''


def backbone_tags(arch: str) -> Dict[str, PretrainedCfg]:
    """The pretrained tags of timm architecture `arch` (default first), tag -> cfg."""
    return {split_model_name_tag(name)[1]: cfg for name, cfg in get_arch_pretrained_cfgs(arch).items()}


def _export_config(folder: Path) -> Dict[str, Any]:
    """The config.json of an export folder (`local-dir:`, timm's `save_for_hf`); {} where it has none that parses."""
    try:
        config = json.loads((folder / 'config.json').read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _architecture_hint(source: str) -> str:
    """The timm architecture a `hf-hub:timm/...` repo or a `local-dir:` export holds, as ' (backbone=...)', or ''."""
    if source.startswith('hf-hub:timm/'):
        return f" (backbone={source.removeprefix('hf-hub:timm/').split('@')[0]!r})"
    architecture = _export_config(Path(source.removeprefix('local-dir:'))).get('architecture')
    return f' (backbone={architecture!r}, from its config.json)' if isinstance(architecture, str) else ''


def resolve_backbone(backbone: str) -> Tuple[str, Optional[str]]:
    """Split `backbone` into a timm architecture and tag, each checked; BackboneError names what is wrong."""
    if not isinstance(backbone, str) or not backbone:
        raise BackboneError(
            f'backbone must be a timm model name, e.g. backbone="convnext_tiny.fb_in22k", got {backbone!r}')
    if backbone.startswith(('hf-hub:', 'local-dir:')):
        raise BackboneError(
            f'backbone={backbone!r}: a Hub repo or a local folder is not a backbone name; give the timm '
            f'architecture it holds{_architecture_hint(backbone)}. timm\'s own Hub weights (hf-hub:timm/ARCH.TAG) '
            f"are backbone='ARCH.TAG' with pretrained=True; other trunk weights load into the built model with "
            f"model.backbone.load_state_dict(timm.create_model({backbone!r}, pretrained=True, num_classes=0, "
            f"global_pool='').state_dict())")
    arch, tag = split_model_name_tag(backbone)
    if not is_model(arch):
        raise BackboneError(f'unknown timm backbone {arch!r}{_close_matches(arch)}')
    if model_entrypoint(arch).__module__.startswith('timm_gcp.'):
        raise BackboneError(f'{arch!r} is a timm-gcp model with a GCP head of its own; give its backbone instead')
    if tag and tag not in backbone_tags(arch):
        tags = ', '.join(backbone_tags(arch)) or 'none'
        raise BackboneError(f'backbone {arch!r} has no pretrained tag {tag!r}; its tags: {tags}')
    return arch, tag or None


def _probe_size(arch: str, tag: Optional[str], in_chans: int, kwargs: Dict[str, Any]) -> Tuple[int, int, int]:
    cfg = get_pretrained_cfg(f'{arch}.{tag}' if tag else arch)
    size = kwargs.get('img_size')
    if size is None:
        size = cfg.input_size[-2:] if cfg is not None else (224, 224)
    elif isinstance(size, int):
        size = (size, size)
    return in_chans, int(size[0]), int(size[1])


_LAYOUTS: Dict[Tuple[str, int, str], TrunkLayout] = {}


def probe_backbone(backbone: str, in_chans: int = 3, **kwargs: Any) -> TrunkLayout:
    """The layout of `backbone`'s unpooled features with these arguments (`_probe`), read once per process."""
    key = (backbone, in_chans, repr(sorted(kwargs.items())))
    if key not in _LAYOUTS:
        _LAYOUTS[key] = _probe(backbone, in_chans, **kwargs)
    return _LAYOUTS[key]


def _headless(arch: str, in_chans: int, kwargs: Dict[str, Any]) -> nn.Module:
    """timm's `arch` without classifier and pooling, as the GCP models build it (on the device in effect)."""
    return timm.create_model(arch, num_classes=0, global_pool='', in_chans=in_chans, **kwargs)


def _builds(arch: str, in_chans: int, kwargs: Dict[str, Any]) -> bool:
    """Whether `_headless` builds with these arguments (on the meta device: no memory, no weights)."""
    try:
        with torch.device('meta'):
            _headless(arch, in_chans, kwargs)
    except (TypeError, AssertionError, ValueError):
        return False
    return True


_UNEXPECTED_ARG = re.compile(r"unexpected keyword argument '(\w+)'")


def _build_error(arch: str, in_chans: int, kwargs: Dict[str, Any], error: Exception) -> Optional[BackboneError]:
    """A BackboneError for what timm raised building `arch` headless: the argument it refuses, or its reason.

    None for a TypeError that names no argument of `kwargs` (not the caller's mistake).
    """
    if isinstance(error, TypeError):
        match = _UNEXPECTED_ARG.search(str(error))
        if not match or match.group(1) not in kwargs:
            return None
        name = match.group(1)
        why = ' (timm has no dilated variant of it)' if name == 'output_stride' else ''
        return BackboneArgumentError(
            f'backbone {arch!r} does not take {name}={kwargs[name]!r}{why}; leave {name} unset')
    reason = str(error) or f'{type(error).__name__} with no message'
    stride = kwargs.get('output_stride')
    if stride is not None and _builds(arch, in_chans, {k: v for k, v in kwargs.items() if k != 'output_stride'}):
        takes = [s for s in (8, 16, 32) if s != stride and _builds(arch, in_chans, dict(kwargs, output_stride=s))]
        return BackboneError(
            f'backbone {arch!r} cannot be built with output_stride={stride} ({reason}); it takes output_stride '
            f'{" or ".join(map(str, takes)) or "unset only"}')
    given = f' with {", ".join(f"{k}={v!r}" for k, v in kwargs.items())}' if kwargs else ''
    return BackboneError(
        f"backbone {arch!r} cannot be built without its pooling (num_classes=0, global_pool=''){given}: {reason}; "
        f"a GCP head needs its unpooled B x C x H x W or B x H x W x C map or B x N x C tokens")


def _map_size(trunk: nn.Module, fmt: str, in_chans: int, side: int) -> Tuple[int, int]:
    """H x W of the trunk's unpooled map for a side x side meta input; (0, 0) where the trunk refuses that size."""
    x = torch.empty(1, in_chans, side, side, device='meta')
    try:
        with torch.no_grad():
            feats = trunk.forward_head(trunk.forward_features(x), pre_logits=True)
    except (RuntimeError, AssertionError, ValueError):
        return 0, 0
    return (feats.shape[2], feats.shape[3]) if fmt == 'NCHW' else (feats.shape[1], feats.shape[2])


def _min_input_side(trunk: nn.Module, fmt: str, in_chans: int, side: int, reduction: int) -> int:
    """The smallest square input side (at most `side`, which gives one) whose map has at least 2 x 2 positions.

    Stages that round up (padded strided convs) need the total `reduction` + 1, which two meta-device
    forwards confirm; stages that floor (ConvNeXt's patchify stem and downsampling) need more, found by
    bisection on meta-device forwards.
    """
    def two_positions(s: int) -> bool:
        return min(_map_size(trunk, fmt, in_chans, s)) >= 2

    if reduction < side and two_positions(reduction + 1) and not two_positions(reduction):
        return reduction + 1
    lo, hi = 1, side
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if two_positions(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _patch_positions(trunk: nn.Module, x: torch.Tensor) -> Tuple[int, ...]:
    """The positions of the trunk's last feature level at input `x`, rounded down and up (one token each)."""
    reduction = trunk.feature_info[-1]['reduction'] if getattr(trunk, 'feature_info', None) else None
    if not reduction:
        return ()
    h, w = x.shape[-2:]
    return (h // reduction) * (w // reduction), -(-h // reduction) * -(-w // reduction)


def _probe(backbone: str, in_chans: int = 3, **kwargs: Any) -> TrunkLayout:
    """Build `backbone` on the meta device (no weights) and read the layout of its unpooled features.

    These are `forward_head(forward_features(x), pre_logits=True)` of the backbone built with
    `num_classes=0, global_pool=''`: the map or tokens after the layers timm counts as head (ConvNeXt's
    final norm, MobileNetV3's 1x1 conv to 1280), which the GCP head then pools instead of the average.

    `kwargs` go to `timm.create_model` (output_stride, img_size, drop_path_rate, ...). A BackboneError names
    an argument the backbone does not take, features other than 3-D or 4-D, tokens that are not one per
    position of its last map plus its `num_prefix_tokens` (PiT's head gets its class tokens only), and a map
    of one position at the input size.
    """
    arch, tag = resolve_backbone(backbone)
    output_stride = kwargs.get('output_stride')
    with torch.device('meta'):
        try:
            trunk = _headless(arch, in_chans, kwargs)
        except (TypeError, AssertionError, ValueError) as e:
            error = _build_error(arch, in_chans, kwargs, e)
            if error is None:
                raise
            raise error from e
        x = torch.empty(1, *_probe_size(arch, tag, in_chans, kwargs))
        with torch.no_grad():
            feats = trunk.eval().forward_head(trunk.forward_features(x), pre_logits=True)
    if not isinstance(feats, torch.Tensor) or feats.ndim not in (3, 4):
        shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise BackboneError(
            f'backbone {arch!r}: its unpooled features are {shape}; a GCP head needs a B x C x H x W or '
            f'B x H x W x C map or B x N x C tokens')
    if feats.ndim == 3:
        prefix = int(getattr(trunk, 'num_prefix_tokens', 0) or 0)
        positions = _patch_positions(trunk, x)
        if positions and feats.shape[1] - prefix not in positions:
            raise BackboneError(
                f'backbone {arch!r}: its unpooled features are {tuple(feats.shape)} tokens at {x.shape[-2]}x'
                f'{x.shape[-1]} px, {prefix} of them counted as class / register tokens, not one per position '
                f'of its last {positions[0]}-position map: its head reads a token set other than the patch '
                f'tokens (e.g. class tokens only), which a GCP head cannot pool; choose another backbone')
        return TrunkLayout('NLC', feats.shape[-1], prefix, None, None, len(trunk.feature_info), None)
    fmt = getattr(trunk, 'output_fmt', 'NCHW')
    fmt = fmt if isinstance(fmt, str) and fmt in ('NCHW', 'NHWC') else 'NCHW'
    width, h, w = (feats.shape[1], feats.shape[2], feats.shape[3]) if fmt == 'NCHW' else \
        (feats.shape[3], feats.shape[1], feats.shape[2])
    reduction = x.shape[-1] // w
    if output_stride is not None and reduction != output_stride:
        raise BackboneError(
            f'backbone {arch!r} took output_stride={output_stride} but its features are still 1/{reduction} '
            f'of the input')
    if h * w < 2:
        raise BackboneError(
            f'backbone {arch!r} gives a {h}x{w} map at its {x.shape[-2]}x{x.shape[-1]} px input: the covariance '
            f'of one position is zero; give a larger img_size')
    min_side = _min_input_side(trunk, fmt, in_chans, min(x.shape[-2:]), reduction)
    return TrunkLayout(fmt, width, 0, (h, w), reduction, len(trunk.feature_info), min_side)


@register_notrace_function
def check_input_side(x: torch.Tensor, min_side: Optional[int], backbone: str) -> None:
    """Raise a ValueError for an input whose sides are both under `min_side` (None: unknown), where the map has
    one position."""
    if min_side is not None and x.shape[-2] < min_side and x.shape[-1] < min_side:
        raise ValueError(
            f'input {x.shape[-2]}x{x.shape[-1]} px is too small for backbone {backbone!r}: its map has one position '
            f'below {min_side} px, and the covariance of one position is zero; give inputs of at least {min_side} px '
            f'(e.g. {min_side}x{min_side})')


def _prefixed(pattern: Any, prefix: str) -> Any:
    """A `group_matcher` pattern of the trunk, for the same parameters under `prefix`."""
    if isinstance(pattern, str):
        return '^' + re.escape(prefix) + pattern.removeprefix('^')
    if isinstance(pattern, (list, tuple)) and pattern and isinstance(pattern[0], (list, tuple)):
        return [(_prefixed(p, prefix), *rest) for p, *rest in pattern]
    return pattern


class GCPBackboneModel(GCPClassifierMixin, nn.Module):
    """A timm backbone with feature maps (`self.backbone`, no classifier) and a global covariance pooling head.

    `forward_features` is the backbone's; `forward_head` runs the layers timm counts as the
    backbone's head on the unpooled map (`forward_head(pre_logits=True)`), then the GCP head.
    """

    def __init__(
            self,
            backbone: str,
            num_classes: int = 1000,
            in_chans: int = 3,
            global_pool: str = 'gcp',
            drop_rate: float = 0.0,
            pretrained_backbone: bool = False,
            device=None,
            dtype=None,
            **kwargs: Any,
    ) -> None:
        """
        Args:
            backbone: timm model name, `arch` or `arch.tag` (the tag names the trunk weights).
            num_classes: Classifier outputs; 0 returns the pooled covariance vector.
            in_chans: Input image channels.
            global_pool: 'gcp', or '' for the backbone's unpooled features (with num_classes=0).
            drop_rate: Dropout on the covariance vector before the classifier.
            pretrained_backbone: Load the backbone tag's timm weights into the trunk.
            **kwargs: `gcp_X` sets the head's `GCPPool` argument X, as the GCP ResNets take them (gcp_dim,
                gcp_norm, gcp_act, ...); the rest are `timm.create_model` arguments of the backbone
                (output_stride, drop_path_rate, img_size, ...).
        """
        super().__init__()
        check_pool_type(global_pool, num_classes, 'global_pool')
        gcp_args = pop_gcp_args(kwargs)
        dd = {'device': device, 'dtype': dtype}
        layout = probe_backbone(backbone, in_chans, **kwargs)
        if (layout.input_fmt == 'NLC') != isinstance(self, GCPTokenModel):
            raise BackboneError(f'backbone {backbone!r} gives {"tokens" if layout.input_fmt == "NLC" else "maps"}: '
                                f'build it with {"GCPTokenModel" if layout.input_fmt == "NLC" else "GCPBackboneModel"}')
        self.backbone = timm.create_model(
            backbone, pretrained=pretrained_backbone, num_classes=0, global_pool='', in_chans=in_chans, **kwargs, **dd)
        self.backbone_name = backbone
        self.min_input_size = layout.min_input  # names the smallest input before a 1-position map reaches the head
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_features = self.backbone.num_features
        self.output_fmt = layout.input_fmt
        self.feature_info = [dict(info, module=f'backbone.{info["module"]}') for info in self.backbone.feature_info]
        self.head = GCPHead(
            layout.width,
            num_classes=num_classes,
            pool_type=global_pool,
            drop_rate=drop_rate,
            input_fmt=layout.input_fmt,
            min_input=layout.min_input,  # names the smallest input in the pooling's errors
            **gcp_args,
            **dd,
        )
        self.head_hidden_size = self.head.num_features

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        matcher = self.backbone.group_matcher(coarse=coarse)
        return {k: _prefixed(v, 'backbone.') for k, v in matcher.items()}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        names = self.backbone.no_weight_decay() if hasattr(self.backbone, 'no_weight_decay') else set()
        return {f'backbone.{n}' for n in names}

    def head_in_features(self) -> int:
        """The width of the backbone's unpooled head output (`forward_head(pre_logits=True)`)."""
        return self.backbone.head_hidden_size

    @torch.jit.ignore
    def forward_intermediates(self, x: torch.Tensor, indices: Optional[Union[int, List[int]]] = None, **kwargs: Any):
        """The backbone's `forward_intermediates` (its arguments: norm, stop_early, output_fmt, ...)."""
        return self.backbone.forward_intermediates(x, indices, **kwargs)

    @torch.jit.ignore
    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """Prune the backbone after the `indices` taps; `prune_head` also removes its head layers and the GCP head."""
        take_indices = self.backbone.prune_intermediate_layers(indices, prune_norm=prune_norm, prune_head=prune_head)
        self.num_features = self.backbone.num_features
        self.min_input_size = None  # the probe's minimum is the whole trunk's
        if prune_head:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input_side(x, self.min_input_size, self.backbone_name)
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(self.backbone.forward_head(x, pre_logits=True), pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class GCPTokenModel(GCPBackboneModel):
    """A timm backbone with token features (ViTs) and a GCP head on the patch tokens.

    The class / register tokens (`num_prefix_tokens`) are left out of the covariance. As timm's
    CrossViT and this package's GCP ViTs, `forward_features` returns [prefix tokens B x P x C, patch
    tokens B x N x C] and `num_features == head_hidden_size` is the pooled width, which is what
    timm's non-standard model tests (`vit_*`, ...) expect of a head whose output is not C wide.
    """

    def __init__(self, backbone: str, **kwargs: Any) -> None:
        super().__init__(backbone, **kwargs)
        self.num_prefix_tokens = int(getattr(self.backbone, 'num_prefix_tokens', 0) or 0)
        self.num_features = self.head_hidden_size

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        super().reset_classifier(num_classes, global_pool)
        self.num_features = self.head_hidden_size

    @torch.jit.ignore
    def set_input_size(self, img_size: Optional[Tuple[int, int]] = None, **kwargs: Any) -> None:
        """The backbone's `set_input_size` (timm's ViTs: img_size, patch_size): the head pools the new patch tokens.

        Map models have none, as timm's CNNs: their smallest input is probed at the size they are built with.
        """
        self.backbone.set_input_size(img_size=img_size, **kwargs)

    @torch.jit.ignore
    def forward_intermediates(self, x: torch.Tensor, indices: Optional[Union[int, List[int]]] = None, **kwargs: Any):
        """The backbone's `forward_intermediates`, with the final tokens split as `forward_features` gives them."""
        return split_final_tokens(self.backbone.forward_intermediates(x, indices, **kwargs), self.num_prefix_tokens)

    @torch.jit.ignore
    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        take_indices = super().prune_intermediate_layers(indices, prune_norm=prune_norm, prune_head=prune_head)
        self.num_features = self.head_hidden_size
        return take_indices

    def forward_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        return split_prefix_tokens(self.backbone.forward_features(x), self.num_prefix_tokens)

    def forward_head(self, x: List[torch.Tensor], pre_logits: bool = False) -> torch.Tensor:
        tokens = self.backbone.forward_head(torch.cat(x, dim=1), pre_logits=True)
        if self.head.pool_type:
            tokens = tokens[:, self.num_prefix_tokens:]
        return self.head(tokens, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def trunk_cfg(backbone_cfg: Dict[str, Any], backbone: str) -> Dict[str, Any]:
    """The pretrained cfg of a GCP model whose trunk starts from `backbone`'s weights (cfg `backbone_cfg`).

    The data settings (mean, std, input size, interpolation, crop, classes) are the backbone tag's;
    where its weights are, its paper and notes are not the GCP model's and are left out; the notes
    say where the trunk weights come from and that the head is untrained.
    """
    cfg = {k: v for k, v in backbone_cfg.items() if k not in _WEIGHT_FIELDS and v is not None}
    if cfg.get('first_conv'):
        first = cfg['first_conv']
        cfg['first_conv'] = tuple(f'backbone.{c}' for c in first) if isinstance(first, (list, tuple)) \
            else f'backbone.{first}'
    cfg['classifier'] = 'head.fc'
    cfg['notes'] = (f'Trunk weights: timm {backbone} (pretrained=True loads them); the GCP head is untrained.',)
    return cfg


def _generic_cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': None,
        'crop_pct': 0.875, 'interpolation': 'bicubic', 'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': None, 'classifier': 'head.fc',
        **kwargs,
    }


def _weights_given(kwargs: Dict[str, Any]) -> bool:
    """Whether the caller names weights of the whole GCP model (a Hub or local export, a file, a state dict)."""
    cfg, overlay = kwargs.get('pretrained_cfg'), kwargs.get('pretrained_cfg_overlay') or {}
    if cfg is not None and not isinstance(cfg, str):
        return True
    return any(overlay.get(k) for k in ('url', 'file', 'state_dict', 'hf_hub_id'))


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: GCPBackboneModel) -> Dict[str, torch.Tensor]:
    """A whole GCP model's state dict: timm-gcp's own, or GCP_Optimization's MobileNetV2 (torchvision's layout).

    The authors' keys (`features.N...`, `dimension_reduction`, `classifier.1`, bare or under
    'state_dict', with or without DataParallel's `module.`) are renamed by `MOBILENETV2_RENAMES`;
    a tensor of another shape raises ValueError naming it.
    """
    state_dict = state_dict.get('state_dict', state_dict)
    out = {rename_key(k, MOBILENETV2_RENAMES): v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    # timm's loader adapts the classifier to num_classes and the first conv to in_chans after this filter
    first_conv = model.pretrained_cfg.get('first_conv') or ()
    first_conv = (first_conv,) if isinstance(first_conv, str) else tuple(first_conv)
    adaptable = {'head.fc.weight', 'head.fc.bias'} | {f'{c}.weight' for c in first_conv}
    name = f'{type(model).__name__} on {type(model.backbone).__name__}'
    check_fit(out, model.state_dict(), name, adaptable=adaptable)
    return out


# arguments `build_model_with_cfg` takes for itself; the rest not in GCPBackboneModel's signature are the backbone's
_BUILD_ARGS = ('pretrained_cfg', 'pretrained_cfg_overlay', 'features_only', 'out_indices', 'feature_cfg', 'feature_cls',
               'cache_dir', 'pretrained_model_args', 'pruned', 'pretrained_strict')
_MODEL_ARGS = tuple(inspect.signature(GCPBackboneModel.__init__).parameters)


def _backbone_kwargs(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in kwargs.items()
            if k not in _MODEL_ARGS and k not in _BUILD_ARGS and not k.startswith('gcp_')}


def _check_own_backbone(variant: str, backbone: Any) -> None:
    """A preset (and GCP_Optimization's MobileNetV2) is its own backbone; BackboneError for any other `backbone=`.

    The trunk's tag comes with the model tag (`convnext_tiny_isqrt.fb_in1k`), so a tagged own backbone is
    refused too, naming the model tag that gives it.
    """
    own, method = _PRESET_TRUNKS.get(variant, (None, None))
    if own is None or backbone == own:
        return
    arch, tag = split_model_name_tag(backbone) if isinstance(backbone, str) else (backbone, '')
    if arch == own and tag in backbone_tags(variant):
        raise BackboneError(f"{variant} takes its trunk's tag from the model tag, not from backbone={backbone!r}: "
                            f"timm.create_model('{variant}.{tag}') starts from {backbone}")
    raise BackboneError(f'{variant} is timm {own} with a GCP head and takes no backbone={backbone!r}; for a GCP '
                        f"head on another backbone use timm.create_model('gcp_{method}', backbone={backbone!r})")


def _model_tag(variant: str, pretrained_cfg: Any) -> Optional[str]:
    """The model tag timm builds: `variant.tag` arrives as pretrained_cfg='tag', and a bare name is its default tag.

    A cfg the caller gives (dict or PretrainedCfg) names weights of its own and no tag.
    """
    if pretrained_cfg is None:
        return get_pretrained_cfg(variant).tag or None
    return pretrained_cfg if isinstance(pretrained_cfg, str) else None


def _check_model_tag(variant: str, tag: str, arch: str, backbone_tag: Optional[str]) -> None:
    """A model tag without weights of its own names the trunk's: a tag of the backbone, the one `backbone=` names.

    A generic model takes every tag of its backbone; the other models their registered tags only (a preset's
    mirror its backbone's, GCP_Optimization's MobileNetV2 has its release tags).
    """
    if variant in GENERIC_MODELS:
        tags = backbone_tags(arch)
        if tag not in tags:
            raise BackboneError(f"{variant} has no tag {tag!r}: without GCP weights of its own, its tags are those of "
                                f"backbone {arch!r}: {', '.join(tags) or 'none'}")
    elif tag not in backbone_tags(variant):
        raise BackboneError(f"{variant} has no tag {tag!r}; its tags: {', '.join(backbone_tags(variant))}")
    if backbone_tag and backbone_tag != tag:
        raise BackboneError(f"'{variant}.{tag}' and backbone='{arch}.{backbone_tag}' name two trunk tags; give one")


def _check_export_file(variant: str, arch: str, kwargs: Dict[str, Any]) -> None:
    """A whole-model file from an export folder whose config.json names another model fails, naming that model."""
    file = (kwargs.get('pretrained_cfg_overlay') or {}).get('file')
    if not file:
        return
    folder = Path(file).parent
    exported = _export_config(folder)
    theirs = exported.get('architecture')
    their_backbone = (exported.get('model_args') or {}).get('backbone') if theirs else None
    if theirs is None or (theirs == variant and split_model_name_tag(their_backbone or arch)[0] == arch):
        return
    on = f' on backbone {their_backbone!r}' if their_backbone else ''
    raise BackboneError(
        f'{file} holds the weights of {theirs}{on} (the config.json beside it), not of {variant} on backbone '
        f"{arch!r}: load the whole export with timm.create_model('local-dir:{folder}', pretrained=True)")


def _check_trunk_cached(variant: str, backbone: str, cache_dir: Optional[str]) -> None:
    """With HF_HUB_OFFLINE set, the Hub cache must hold the trunk weights `pretrained=True` loads: fail at once."""
    cfg = get_pretrained_cfg(backbone)
    if cfg is None or not cfg.hf_hub_id or not constants.HF_HUB_OFFLINE:
        return
    if hub_cached(cfg.hf_hub_id, cfg.hf_hub_filename, cache_dir):
        return
    raise WeightsUnavailableError(
        f'{variant}: no pretrained trunk weights: HF_HUB_OFFLINE is set and the local Hub cache has no copy of '
        f"{cfg.hf_hub_id} (timm's {backbone} weights, which pretrained=True loads into the trunk).\n"
        f'  Fetch them once while online:\n'
        f'    python -c "import timm; timm.create_model(\'{backbone}\', pretrained=True)"\n'
        f'  or build the model with pretrained=False.')


def _create_gcp_backbone(variant: str, pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """Build a GCP model; `pretrained` loads the trunk tag's timm weights, or a whole model's weights where named."""
    check_pretrained_arg(variant, pretrained)
    if 'backbone' not in kwargs:
        raise TypeError(f"{variant} needs backbone=<timm model name>, e.g. backbone='convnext_tiny.fb_in22k'")
    _check_own_backbone(variant, kwargs['backbone'])
    arch, backbone_tag = resolve_backbone(kwargs['backbone'])
    tag = _model_tag(variant, kwargs.get('pretrained_cfg'))
    # weights of the whole GCP model (an authors' release tag, an export, a file), else of the trunk only
    release = f'{variant}.{tag}' in RELEASES
    whole_model = pretrained and (release or _weights_given(kwargs))
    if not release:
        # the trunk's tag: the model tag (a preset's mirrors the backbone's), else the one in `backbone`
        if tag:
            _check_model_tag(variant, tag, arch, backbone_tag)
        backbone_tag = tag or backbone_tag
        kwargs['backbone'] = f'{arch}.{backbone_tag}' if backbone_tag else arch
        # the trunk's data settings and first conv, also for a whole model's file, unless the caller gives a cfg
        if variant in GENERIC_MODELS and (tag or kwargs.get('pretrained_cfg') is None):
            backbone_cfg = get_pretrained_cfg(kwargs['backbone'])
            kwargs['pretrained_cfg'] = dict(trunk_cfg(backbone_cfg.to_dict(), kwargs['backbone']), tag=None) \
                if backbone_cfg is not None else None
    layout = probe_backbone(kwargs['backbone'], kwargs.get('in_chans', 3), **_backbone_kwargs(kwargs))
    tokens = layout.input_fmt == 'NLC'
    if whole_model:
        check_pretrained_source(variant, kwargs)
        _check_export_file(variant, arch, kwargs)
    elif pretrained:
        _check_trunk_cached(variant, kwargs['backbone'], kwargs.get('cache_dir'))
    return build_model_with_cfg(
        GCPTokenModel if tokens else GCPBackboneModel,
        variant,
        whole_model,
        pretrained_filter_fn=checkpoint_filter_fn,
        # as timm's ViTs, the last 3 blocks of a token backbone; every level of a CNN
        feature_cfg=dict(feature_cls='getter', out_indices=3 if tokens else tuple(range(layout.num_levels))),
        pretrained_backbone=pretrained and not whole_model,
        **kwargs,
    )


# --- the presets: `<backbone>_<method>`, one tag per tag of the backbone ---------------------------------

def _preset_cfgs(backbone: str, name: str) -> Dict[str, Dict[str, Any]]:
    cfgs = backbone_tags(backbone)
    if not cfgs:
        return {name: trunk_cfg(get_pretrained_cfg(backbone).to_dict(), backbone)}
    return {f'{name}.{tag}': trunk_cfg(cfg.to_dict(), f'{backbone}.{tag}') for tag, cfg in cfgs.items()}


PRESETS = {
    preset_name(backbone, method): (backbone, method) for backbone in PRESET_BACKBONES for method in PRESET_METHODS
}


# --- GCP_Optimization's MobileNetV2 (CVPR'20): iSQRT-COV, ReLU6 reduction, dropout 0.2 -------------------

_MOBILENETV2 = dict(backbone='mobilenetv2_100', gcp_act='relu6', drop_rate=0.2, **GCP_METHODS['isqrt'])
# the backbone and method of each model that is its own backbone
_PRESET_TRUNKS = {**PRESETS, **dict.fromkeys(('mobilenetv2_100_isqrt_d256', 'mobilenetv2_100_isqrt'),
                                              (_MOBILENETV2['backbone'], 'isqrt'))}


def _mobilenetv2_cfg(**kwargs: Any) -> Dict[str, Any]:
    """timm's mobilenetv2_100 cfg with the authors' evaluation (bilinear, crop 0.875) and weights."""
    base = trunk_cfg(get_pretrained_cfg('mobilenetv2_100').to_dict(), 'mobilenetv2_100')
    return dict(base, interpolation='bilinear', crop_pct=0.875, notes=(), **kwargs)


default_cfgs = generate_default_cfgs({
    **{name: _generic_cfg() for name in GENERIC_MODELS},
    **{k: v for name, (backbone, _) in PRESETS.items() for k, v in _preset_cfgs(backbone, name).items()},
    **release_cfgs(_mobilenetv2_cfg, 'mobilenetv2_100_isqrt_d256', 'mobilenetv2_100_isqrt'),
})


@register_model
def gcp_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """Any timm backbone (backbone=...) with an iSQRT-COV GCP head."""
    model_args = dict(**GCP_METHODS['isqrt'])
    return _create_gcp_backbone('gcp_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def gcp_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """Any timm backbone (backbone=...) with a DropCov GCP head."""
    model_args = dict(**GCP_METHODS['dropcov'])
    return _create_gcp_backbone('gcp_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def gcp_mpncov(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """Any timm backbone (backbone=...) with an MPN-COV GCP head."""
    model_args = dict(**GCP_METHODS['mpncov'])
    return _create_gcp_backbone('gcp_mpncov', pretrained, **dict(model_args, **kwargs))


@register_model
def convnext_tiny_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm convnext_tiny with an iSQRT-COV GCP head (128-d reduction)."""
    model_args = dict(backbone='convnext_tiny', **GCP_METHODS['isqrt'])
    return _create_gcp_backbone('convnext_tiny_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def convnext_tiny_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm convnext_tiny with a DropCov GCP head (128-d reduction)."""
    model_args = dict(backbone='convnext_tiny', **GCP_METHODS['dropcov'])
    return _create_gcp_backbone('convnext_tiny_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def convnext_small_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm convnext_small with an iSQRT-COV GCP head (128-d reduction)."""
    model_args = dict(backbone='convnext_small', **GCP_METHODS['isqrt'])
    return _create_gcp_backbone('convnext_small_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def convnext_small_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm convnext_small with a DropCov GCP head (128-d reduction)."""
    model_args = dict(backbone='convnext_small', **GCP_METHODS['dropcov'])
    return _create_gcp_backbone('convnext_small_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def efficientnet_b0_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm efficientnet_b0 with an iSQRT-COV GCP head (128-d reduction)."""
    model_args = dict(backbone='efficientnet_b0', **GCP_METHODS['isqrt'])
    return _create_gcp_backbone('efficientnet_b0_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def efficientnet_b0_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm efficientnet_b0 with a DropCov GCP head (128-d reduction)."""
    model_args = dict(backbone='efficientnet_b0', **GCP_METHODS['dropcov'])
    return _create_gcp_backbone('efficientnet_b0_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def efficientnet_b3_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm efficientnet_b3 with an iSQRT-COV GCP head (128-d reduction)."""
    model_args = dict(backbone='efficientnet_b3', **GCP_METHODS['isqrt'])
    return _create_gcp_backbone('efficientnet_b3_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def efficientnet_b3_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm efficientnet_b3 with a DropCov GCP head (128-d reduction)."""
    model_args = dict(backbone='efficientnet_b3', **GCP_METHODS['dropcov'])
    return _create_gcp_backbone('efficientnet_b3_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def regnety_040_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm regnety_040 with an iSQRT-COV GCP head (128-d reduction)."""
    model_args = dict(backbone='regnety_040', **GCP_METHODS['isqrt'])
    return _create_gcp_backbone('regnety_040_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def regnety_040_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm regnety_040 with a DropCov GCP head (128-d reduction)."""
    model_args = dict(backbone='regnety_040', **GCP_METHODS['dropcov'])
    return _create_gcp_backbone('regnety_040_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def mobilenetv3_large_100_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm mobilenetv3_large_100 with an iSQRT-COV GCP head (128-d reduction)."""
    model_args = dict(backbone='mobilenetv3_large_100', **GCP_METHODS['isqrt'])
    return _create_gcp_backbone('mobilenetv3_large_100_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def mobilenetv3_large_100_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm mobilenetv3_large_100 with a DropCov GCP head (128-d reduction)."""
    model_args = dict(backbone='mobilenetv3_large_100', **GCP_METHODS['dropcov'])
    return _create_gcp_backbone('mobilenetv3_large_100_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def swin_tiny_patch4_window7_224_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm swin_tiny_patch4_window7_224 with an iSQRT-COV GCP head (128-d reduction)."""
    model_args = dict(backbone='swin_tiny_patch4_window7_224', **GCP_METHODS['isqrt'])
    return _create_gcp_backbone('swin_tiny_patch4_window7_224_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def swin_tiny_patch4_window7_224_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm swin_tiny_patch4_window7_224 with a DropCov GCP head (128-d reduction)."""
    model_args = dict(backbone='swin_tiny_patch4_window7_224', **GCP_METHODS['dropcov'])
    return _create_gcp_backbone('swin_tiny_patch4_window7_224_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def vit_small_patch16_224_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm vit_small_patch16_224 with an iSQRT-COV GCP head (128-d reduction)."""
    model_args = dict(backbone='vit_small_patch16_224', **GCP_METHODS['isqrt'])
    return _create_gcp_backbone('vit_small_patch16_224_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def vit_small_patch16_224_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm vit_small_patch16_224 with a DropCov GCP head (128-d reduction)."""
    model_args = dict(backbone='vit_small_patch16_224', **GCP_METHODS['dropcov'])
    return _create_gcp_backbone('vit_small_patch16_224_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def vit_base_patch16_224_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm vit_base_patch16_224 with an iSQRT-COV GCP head (128-d reduction)."""
    model_args = dict(backbone='vit_base_patch16_224', **GCP_METHODS['isqrt'])
    return _create_gcp_backbone('vit_base_patch16_224_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def vit_base_patch16_224_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """timm vit_base_patch16_224 with a DropCov GCP head (128-d reduction)."""
    model_args = dict(backbone='vit_base_patch16_224', **GCP_METHODS['dropcov'])
    return _create_gcp_backbone('vit_base_patch16_224_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def mobilenetv2_100_isqrt_d256(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """MobileNetV2 with GCP_Optimization's iSQRT-COV head (256-d, ReLU6, dropout 0.2)."""
    model_args = dict(gcp_dim=256, **_MOBILENETV2)
    return _create_gcp_backbone('mobilenetv2_100_isqrt_d256', pretrained, **dict(model_args, **kwargs))


@register_model
def mobilenetv2_100_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPBackboneModel:
    """MobileNetV2 with GCP_Optimization's 128-d iSQRT-COV head (ReLU6, dropout 0.2)."""
    model_args = dict(gcp_dim=128, **_MOBILENETV2)
    return _create_gcp_backbone('mobilenetv2_100_isqrt', pretrained, **dict(model_args, **kwargs))
