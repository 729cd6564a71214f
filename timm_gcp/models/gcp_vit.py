"""Vision transformers with global covariance pooling heads: So-ViT / SoT / DropCov-ViT heads on timm's ViT.

Every model is timm's `VisionTransformer` with `TokenGCPHead`: the class token's classifier (`head.cls_fc`)
plus a classifier on the covariance-pooled patch tokens (`head.visual_fc`), logits summed. Head settings
are the `gcp_*` keyword arguments (`gcp_X` is the head's X).

Names: `deit_*_isqrt` (So-ViT's iSQRT-COV head) and `deit_*_dropcov` (DropCov-ViT's cross-covariance
head) on timm's DeiT; `vit_sot_*` (SoT) and the published `vit_dropcov_small`, `vit_dropcov_t2t_14` on the
original trunk (`DenseTokenEmbed`, fixed sinusoid position table: docs/architectures.md, "SoT and
DropCov-ViT trunk").

All names match timm's NON_STD_FILTERS (`deit*`, `vit_*`): as timm's CrossViT, `forward_features` returns
[prefix tokens, patch tokens] (the inputs of the two classifiers), and `num_features == head_hidden_size`
is the pre-logits width C + K. To fine-tune from timm's DeiT weights, load them as the backbone, e.g.
`pretrained_cfg_overlay=dict(hf_hub_id='timm/deit_small_patch16_224.fb_in1k')`: the filter drops the DeiT
classifier and the GCP head keeps its fresh initialization.
"""
import logging
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union

import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import Format, PatchEmbed, _assert, nchw_to, to_2tuple
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model
from timm.models.densenet import DenseBlock, DenseTransition
from timm.models.vision_transformer import VisionTransformer
from timm.models.vision_transformer import checkpoint_filter_fn as vit_checkpoint_filter_fn

from ..checkpoints import VIT_RENAMES, check_fit, rename_key
from ..layers import TokenGCPHead, check_pool_type
from ._head import TOKEN_HEAD_ARGS, GCPClassifierMixin, check_pretrained_arg, pop_gcp_args, split_final_tokens, \
    split_prefix_tokens
from .releases import check_pretrained_source, release_cfgs
from .sources import pretrained_fields

__all__ = ['GCPVisionTransformer', 'DenseTokenEmbed', 'sinusoid_pos_embed', 'checkpoint_filter_fn']

_logger = logging.getLogger(__name__)

POS_EMBED_TYPES = ('learn', 'sinusoid', 'none', '')


def sinusoid_pos_embed(
        num_positions: int,
        dim: int,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """1-D sinusoid table of T2T-ViT / SoT, 1 x num_positions x dim (position 0 is the class token).

    angle(p, j) = p / 10000^(2 floor(j / 2) / dim); sin on even j, cos on odd j. Built in float64
    and rounded once, as the original's numpy table.
    """
    pos = torch.arange(num_positions, dtype=torch.float64, device=device).unsqueeze(1)
    j = torch.arange(dim, dtype=torch.float64, device=device)
    angle = pos / torch.pow(10000.0, 2.0 * torch.div(j, 2, rounding_mode='floor') / dim)
    table = torch.where(j.remainder(2) == 0, angle.sin(), angle.cos())
    return table.unsqueeze(0).to(torch.float32 if dtype is None else dtype)


def _relu_norm(num_features: int, device=None, dtype=None) -> nn.Module:
    """The 'norm' of the original dense layers: timm <= 0.5's DenseBlock default, a bare ReLU (no BatchNorm)."""
    return nn.ReLU()


class DenseTokenEmbed(nn.Module):
    """DenseNet-style token embedding of SoT / DropCov-ViT: B x 3 x H x W images to (H/16) x (W/16) tokens.

    stem 3x3 conv (stride 1, with bias) + 3x3/2 max pool, then three times a dense block (6 layers,
    growth 16, bottleneck 2; ReLU -> 1x1 conv -> ReLU -> 3x3 conv, no BatchNorm) and a transition
    (BatchNorm, 1x1 conv to 128, 2x2 average pool), then a 1x1 conv (with bias) to `embed_dim`.
    Module names follow the original (`stem`, `stage`, `transition`), under `patch_embed`.
    """
    output_fmt: Format

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            patch_size: Union[int, Tuple[int, int]] = 16,
            in_chans: int = 3,
            embed_dim: int = 384,
            bias: bool = True,
            stem_chs: int = 64,
            num_layers: int = 6,
            growth_rate: int = 16,
            bn_size: int = 2,
            transition_chs: int = 128,
            flatten: bool = True,
            output_fmt: Optional[str] = None,
            strict_img_size: bool = True,
            dynamic_img_pad: bool = False,
            norm_layer: Optional[Callable] = None,
            device=None,
            dtype=None,
    ) -> None:
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if to_2tuple(patch_size) != (16, 16):
            raise ValueError(f'DenseTokenEmbed has a fixed stride of 16, got patch_size={patch_size}')
        if dynamic_img_pad or norm_layer is not None:
            raise ValueError('DenseTokenEmbed supports neither dynamic_img_pad nor an embedding norm layer')
        self.patch_size = (16, 16)
        self.img_size, self.grid_size, self.num_patches = self._init_img_size(img_size)
        if output_fmt is not None:
            self.flatten = False
            self.output_fmt = Format(output_fmt)
        else:
            self.flatten = flatten
            self.output_fmt = Format.NCHW
        self.strict_img_size = strict_img_size
        self.dynamic_img_pad = False

        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, stem_chs, kernel_size=3, stride=1, padding=1, **dd),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        stages = []
        chs = stem_chs
        for _ in range(3):
            stages += [
                DenseBlock(num_layers, chs, bn_size, growth_rate, norm_layer=_relu_norm, **dd),
                DenseTransition(chs + num_layers * growth_rate, transition_chs, norm_layer=nn.BatchNorm2d, **dd),
            ]
            chs = transition_chs
        self.stage = nn.Sequential(*stages)
        self.transition = nn.Conv2d(transition_chs, embed_dim, kernel_size=1, bias=bias, **dd)

    def _init_img_size(self, img_size: Union[int, Tuple[int, int]]):
        img_size = to_2tuple(img_size)
        grid_size = self.dynamic_feat_size(img_size)
        return img_size, grid_size, grid_size[0] * grid_size[1]

    def set_input_size(
            self,
            img_size: Optional[Union[int, Tuple[int, int]]] = None,
            patch_size: Optional[Union[int, Tuple[int, int]]] = None,
    ) -> None:
        if patch_size is not None and to_2tuple(patch_size) != self.patch_size:
            raise ValueError(f'DenseTokenEmbed has a fixed stride of 16, got patch_size={patch_size}')
        if img_size is not None:
            self.img_size, self.grid_size, self.num_patches = self._init_img_size(img_size)

    def feat_ratio(self, as_scalar: bool = True) -> Union[Tuple[int, int], int]:
        return 16 if as_scalar else self.patch_size

    def dynamic_feat_size(self, img_size: Tuple[int, int]) -> Tuple[int, int]:
        """Token grid for an image size: the stem's max pool rounds up, the three average pools round down."""
        return (img_size[0] + 1) // 2 // 8, (img_size[1] + 1) // 2 // 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.strict_img_size:
            _assert(x.shape[2] == self.img_size[0],
                    f'Input height ({x.shape[2]}) does not match model ({self.img_size[0]}).')
            _assert(x.shape[3] == self.img_size[1],
                    f'Input width ({x.shape[3]}) does not match model ({self.img_size[1]}).')
        x = self.transition(self.stage(self.stem(x)))
        if self.flatten:
            x = x.flatten(2).transpose(1, 2)
        elif self.output_fmt != Format.NCHW:
            x = nchw_to(x, self.output_fmt)
        return x


class GCPVisionTransformer(GCPClassifierMixin, VisionTransformer):
    """timm's VisionTransformer with a token GCP head: class-token and covariance-pooled patch-token classifiers.

    `forward_features` returns [prefix tokens, patch tokens] (after the final norm), the two inputs
    of the head; `forward_head` returns the summed logits, or the pre-logits [class token, pooled
    vector] (B x num_features), or with `global_pool=''` the unpooled tokens B x N x C.
    """

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            patch_size: Union[int, Tuple[int, int]] = 16,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'gcp',
            embed_dim: int = 768,
            pos_embed: str = 'learn',
            embed_layer: Callable = PatchEmbed,
            drop_rate: float = 0.0,
            weight_init: str = '',
            device=None,
            dtype=None,
            **kwargs: Any,
    ) -> None:
        """
        Args:
            img_size, patch_size, in_chans, embed_dim, embed_layer, weight_init: timm VisionTransformer
                settings.
            num_classes: Classifier outputs; 0 returns the pre-logits [class token, pooled vector].
            global_pool: 'gcp', or '' for the unpooled tokens (with num_classes=0).
            pos_embed: 'learn' (timm), 'sinusoid' (fixed table, SoT / DropCov-ViT) or 'none'.
            drop_rate: Dropout on the pre-logits before the classifiers.
            **kwargs: `gcp_X` sets the `TokenGCPHead` argument X (gcp_pool, gcp_dim, gcp_norm, gcp_iters,
                gcp_heads, gcp_qk_chunks, gcp_token_drop, gcp_drop, gcp_expand); the rest are timm VisionTransformer
                settings (depth, num_heads, mlp_ratio, qkv_bias, norm_layer, drop path, ...). The class
                token is required; fc_norm is not supported.
        """
        check_pool_type(global_pool, num_classes, 'global_pool')
        gcp_args = pop_gcp_args(kwargs, TOKEN_HEAD_ARGS)
        if pos_embed not in POS_EMBED_TYPES:
            raise ValueError(f'unknown pos_embed {pos_embed!r}, expected one of {POS_EMBED_TYPES}')
        if not kwargs.get('class_token', True):
            raise ValueError('the token GCP head classifies the class token: class_token=False is not supported')
        if kwargs.get('fc_norm'):
            raise ValueError('fc_norm is not supported: the final norm applies to all tokens before the GCP head')
        if pos_embed == 'sinusoid' and kwargs.get('dynamic_img_size'):
            raise ValueError('dynamic_img_size needs a learned position embedding, not the fixed sinusoid table')
        dd = {'device': device, 'dtype': dtype}
        super().__init__(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=0,
            global_pool='token',
            embed_dim=embed_dim,
            pos_embed='none' if pos_embed == 'sinusoid' else pos_embed,
            embed_layer=embed_layer,
            weight_init='skip',
            **kwargs,
            **dd,
        )
        self.weight_init_mode = 'reset' if weight_init == 'skip' else weight_init
        self.global_pool = global_pool
        self.num_classes = num_classes
        self.pos_embed_type = pos_embed
        if pos_embed == 'sinusoid':
            # a fixed table: a buffer (in the state dict, as the original's frozen Parameter), not a Parameter
            del self.pos_embed
            self.register_buffer('pos_embed', sinusoid_pos_embed(self._num_pos_tokens(), embed_dim, **dd))
        self.head = TokenGCPHead(
            embed_dim, num_classes=num_classes, pool_type=global_pool, drop_rate=drop_rate, **gcp_args, **dd)
        self.num_features = self.head_hidden_size = self.head.num_features
        if weight_init != 'skip':
            self.init_weights(needs_reset=False)

    def _num_pos_tokens(self) -> int:
        return self.patch_embed.num_patches + (0 if self.no_embed_class else self.num_prefix_tokens)

    def init_weights(self, mode: str = '', needs_reset: bool = True) -> None:
        super().init_weights(mode, needs_reset=needs_reset)
        if self.pos_embed_type == 'sinusoid':
            # the parent draws a learned embedding; this one is the fixed table
            with torch.no_grad():
                self.pos_embed.copy_(sinusoid_pos_embed(self.pos_embed.shape[1], self.embed_dim))

    @torch.jit.ignore
    def no_weight_decay(self) -> Set[str]:
        nwd = super().no_weight_decay()
        return nwd - {'pos_embed'} if self.pos_embed_type == 'sinusoid' else nwd

    @torch.jit.ignore
    def get_classifier(self) -> Tuple[nn.Module, nn.Module]:
        return self.head.cls_fc, self.head.visual_fc

    def head_in_features(self) -> int:
        return self.embed_dim

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace both classifiers; `global_pool=''` returns unpooled tokens (and removes the pooling), None
        keeps the pooling. A classifier on unpooled tokens (`num_classes > 0`, None) brings the pooling back.
        """
        super().reset_classifier(num_classes, global_pool)
        self.global_pool = self.head.pool_type
        self.num_features = self.head_hidden_size

    def set_input_size(
            self,
            img_size: Optional[Tuple[int, int]] = None,
            patch_size: Optional[Tuple[int, int]] = None,
    ) -> None:
        if self.pos_embed_type != 'sinusoid':
            super().set_input_size(img_size=img_size, patch_size=patch_size)
            return
        # the parent would resample the table (into a Parameter); a fixed table is rebuilt for the new grid
        old = self.pos_embed
        self.pos_embed = None
        super().set_input_size(img_size=img_size, patch_size=patch_size)
        self.pos_embed = sinusoid_pos_embed(self._num_pos_tokens(), self.embed_dim, device=old.device, dtype=old.dtype)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            return_prefix_tokens: bool = False,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
            output_dict: bool = False,
            attn_mask: Optional[torch.Tensor] = None,
            is_causal: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[List[torch.Tensor], List[torch.Tensor]], Dict[str, Any]]:
        """timm's ViT forward_intermediates; the final features are split as `forward_features` returns them."""
        out = super().forward_intermediates(
            x,
            indices=indices,
            return_prefix_tokens=return_prefix_tokens,
            norm=norm,
            stop_early=stop_early,
            output_fmt=output_fmt,
            intermediates_only=intermediates_only,
            output_dict=output_dict,
            attn_mask=attn_mask,
            is_causal=is_causal,
        )
        return split_final_tokens(out, self.num_prefix_tokens)

    def forward_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.patch_embed(x)
        x = self._pos_embed(x)
        x = self.patch_drop(x)
        x = self.norm_pre(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        x = self.norm(x)
        return split_prefix_tokens(x, self.num_prefix_tokens)

    def forward_head(self, x: List[torch.Tensor], pre_logits: bool = False) -> torch.Tensor:
        if not self.head.pool_type:
            return torch.cat(x, dim=1)
        return self.head(x[0][:, 0], x[1], pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_GCP_HEAD_PREFIXES = ('head.cls_fc.', 'head.visual_fc.', 'head.representation.')


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: GCPVisionTransformer) -> Dict[str, torch.Tensor]:
    """Map a checkpoint onto a GCPVisionTransformer.

    Accepts this package's layout; the original SoT / DropCov-ViT checkpoints (timm 0.3 / 0.4
    CheckpointSaver files: `state_dict_ema` is used when present, as the authors evaluate, else
    `state_dict`; keys renamed by `VIT_RENAMES`); and timm ViT / DeiT weights for
    the backbone, whose classifier is dropped so the GCP head keeps its fresh initialization. The
    fixed sinusoid table is always the model's own; learned position and patch embeddings are
    resampled by timm's ViT filter when the grid differs.
    """
    for key in ('state_dict_ema', 'model_ema', 'state_dict', 'model'):
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
            break
    out = {rename_key(k, VIT_RENAMES): v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    has_gcp_head = any(k.startswith(_GCP_HEAD_PREFIXES) for k in out)
    if not has_gcp_head:
        # a plain ViT classifier (head.weight / head.bias) does not fit the GCP head
        for k in ('head.weight', 'head.bias'):
            out.pop(k, None)
    if model.pos_embed_type == 'sinusoid' and 'pos_embed' in out:
        out['pos_embed'] = model.pos_embed.detach().clone()
    out = vit_checkpoint_filter_fn(out, model)
    if not has_gcp_head:
        _logger.info('Checkpoint has no GCP head: the head keeps its new initialization.')
        out.update(model.head.state_dict(prefix='head.'))
    # timm's loader adapts the classifiers to num_classes and the first conv to in_chans after this filter
    first_conv = model.pretrained_cfg.get('first_conv')
    adaptable = {f'head.{fc}.{p}' for fc in ('cls_fc', 'visual_fc') for p in ('weight', 'bias')}
    check_fit(out, model.state_dict(), type(model).__name__, adaptable=adaptable | {f'{first_conv}.weight'})
    return out


def _create_gcp_vit(variant: str, pretrained: bool = False, **kwargs: Any) -> GCPVisionTransformer:
    check_pretrained_arg(variant, pretrained)
    out_indices = kwargs.pop('out_indices', 3)
    if pretrained:
        check_pretrained_source(variant, kwargs)
    return build_model_with_cfg(
        GCPVisionTransformer,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls='getter'),
        **kwargs,
    )


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (14, 14),
        'crop_pct': 0.9, 'interpolation': 'bicubic', 'fixed_input_size': True,
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embed.proj', 'classifier': ('head.cls_fc', 'head.visual_fc'),
        **kwargs,
    }


def _dense_cfg(**kwargs: Any) -> Dict[str, Any]:
    """The SoT / DropCov-ViT trunk; the authors evaluate at resize 256, centre crop 224."""
    return _cfg(crop_pct=0.875, first_conv='patch_embed.stem.0', **kwargs)


_SOVIT = pretrained_fields('sovit', 'jiangtaoxie/SoT')
_SOT = pretrained_fields('sot', 'jiangtaoxie/SoT')
_DC = pretrained_fields('dropcov', 'mingzeG/DropCov')

default_cfgs = generate_default_cfgs({
    # timm's DeiT with GCP heads (no weights: start from timm's DeiT backbone weights, see the module docstring)
    'deit_tiny_patch16_224_isqrt': _cfg(**_SOVIT),
    'deit_small_patch16_224_isqrt': _cfg(**_SOVIT),
    'deit_base_patch16_224_isqrt': _cfg(**_SOVIT),
    'deit_tiny_patch16_224_dropcov': _cfg(**_DC),
    'deit_small_patch16_224_dropcov': _cfg(**_DC),
    'deit_base_patch16_224_dropcov': _cfg(**_DC),

    # SoT (no weights were released)
    'vit_sot_tiny': _dense_cfg(**_SOT),
    'vit_sot_small': _dense_cfg(**_SOT),
    'vit_sot_base': _dense_cfg(**_SOT),

    # the published DropCov-ViT models (ImageNet-1k top-1 82.4 and 82.7 as published)
    **release_cfgs(_dense_cfg, 'vit_dropcov_small', 'vit_dropcov_t2t_14'),
})

_ISQRT = dict(gcp_pool='cov', gcp_dim=128, gcp_norm='isqrt')
_DROPCOV = dict(gcp_pool='crosscov', gcp_heads=6, gcp_dim=24, gcp_token_drop=0.2, gcp_drop=0.5)
_DENSE_TRUNK = dict(
    embed_layer=DenseTokenEmbed, pos_embed='sinusoid', qkv_bias=False, norm_layer=partial(nn.LayerNorm, eps=1e-5))


@register_model
def deit_tiny_patch16_224_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPVisionTransformer:
    """DeiT-Tiny with So-ViT's iSQRT-COV head (patch tokens reduced to 128, 5 Newton-Schulz iterations)."""
    model_args = dict(patch_size=16, embed_dim=192, depth=12, num_heads=3, **_ISQRT)
    return _create_gcp_vit('deit_tiny_patch16_224_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def deit_small_patch16_224_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPVisionTransformer:
    """DeiT-Small with So-ViT's iSQRT-COV head (patch tokens reduced to 128)."""
    model_args = dict(patch_size=16, embed_dim=384, depth=12, num_heads=6, **_ISQRT)
    return _create_gcp_vit('deit_small_patch16_224_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def deit_base_patch16_224_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPVisionTransformer:
    """DeiT-Base with So-ViT's iSQRT-COV head (patch tokens reduced to 128)."""
    model_args = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, **_ISQRT)
    return _create_gcp_vit('deit_base_patch16_224_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def deit_tiny_patch16_224_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPVisionTransformer:
    """DeiT-Tiny with DropCov-ViT's cross-covariance head (6 heads x 14, as DropCov-ViT Tiny)."""
    model_args = dict(patch_size=16, embed_dim=192, depth=12, num_heads=3, **dict(_DROPCOV, gcp_dim=14))
    return _create_gcp_vit('deit_tiny_patch16_224_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def deit_small_patch16_224_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPVisionTransformer:
    """DeiT-Small with DropCov-ViT's cross-covariance head (6 heads x 24)."""
    model_args = dict(patch_size=16, embed_dim=384, depth=12, num_heads=6, **_DROPCOV)
    return _create_gcp_vit('deit_small_patch16_224_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def deit_base_patch16_224_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPVisionTransformer:
    """DeiT-Base with DropCov-ViT's cross-covariance head (12 heads x 24, as DropCov-ViT Base)."""
    model_args = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, **dict(_DROPCOV, gcp_heads=12))
    return _create_gcp_vit('deit_base_patch16_224_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def vit_sot_tiny(pretrained: bool = False, **kwargs: Any) -> GCPVisionTransformer:
    """SoT-Tiny: 240-wide, 12 blocks, 4 heads, MLP 2.5; cross-covariance head 6 x 14 with svPN."""
    model_args = dict(
        embed_dim=240, depth=12, num_heads=4, mlp_ratio=2.5, **_DENSE_TRUNK,
        gcp_pool='crosscov', gcp_heads=6, gcp_dim=14, gcp_norm='svpn', gcp_drop=0.0)
    return _create_gcp_vit('vit_sot_tiny', pretrained, **dict(model_args, **kwargs))


@register_model
def vit_sot_small(pretrained: bool = False, **kwargs: Any) -> GCPVisionTransformer:
    """SoT-Small: 384-wide, 14 blocks, 6 heads, MLP 3.5; cross-covariance head 6 x 24 with svPN, dropout 0.5."""
    model_args = dict(
        embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.5, **_DENSE_TRUNK,
        gcp_pool='crosscov', gcp_heads=6, gcp_dim=24, gcp_norm='svpn', gcp_drop=0.5)
    return _create_gcp_vit('vit_sot_small', pretrained, **dict(model_args, **kwargs))


@register_model
def vit_sot_base(pretrained: bool = False, **kwargs: Any) -> GCPVisionTransformer:
    """SoT-Base: 528-wide, 24 blocks, 8 heads, MLP 3; cross-covariance head 6 x 38 with svPN, dropout 0.7."""
    model_args = dict(
        embed_dim=528, depth=24, num_heads=8, mlp_ratio=3.0, **_DENSE_TRUNK,
        gcp_pool='crosscov', gcp_heads=6, gcp_dim=38, gcp_norm='svpn', gcp_drop=0.7)
    return _create_gcp_vit('vit_sot_base', pretrained, **dict(model_args, **kwargs))


@register_model
def vit_dropcov_small(pretrained: bool = False, **kwargs: Any) -> GCPVisionTransformer:
    """DropCov-ViT Small ("DeiT-S + DropCov", `Deit_drop_Small`): 384-wide, 12 blocks, 6 heads, MLP 4; SoT trunk."""
    model_args = dict(
        embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0, **_DENSE_TRUNK, **dict(_DROPCOV, gcp_qk_chunks=3))
    return _create_gcp_vit('vit_dropcov_small', pretrained, **dict(model_args, **kwargs))


@register_model
def vit_dropcov_t2t_14(pretrained: bool = False, **kwargs: Any) -> GCPVisionTransformer:
    """DropCov-ViT "T2T-ViT-14 + DropCov" (`T2T_ViT_14`): 384-wide, 14 blocks, 6 heads, MLP 3; SoT trunk, not T2T."""
    model_args = dict(
        embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.0, **_DENSE_TRUNK, **dict(_DROPCOV, gcp_qk_chunks=3))
    return _create_gcp_vit('vit_dropcov_t2t_14', pretrained, **dict(model_args, **kwargs))
