"""ResNets with global covariance pooling heads (iSQRT-COV, DropCov, MPN-COV).

timm's ResNet (v1.5) with the last stage at stride 1 and no dilation (14x14 features at 224 px), and
`GCPHead` in place of the average pooling: a 1x1 reduction to `gcp_dim` channels, covariance,
normalization, upper triangle and one Linear (docs/architectures.md, "GCP ResNets").

Names: `<backbone>_<method>[_d<dim>]`, dim 128 unless `_d256`; head settings are the `gcp_*` keyword
arguments. `ms_<name>` models have the numerics of the TPAMI'23 MindSpore weights as their defaults
(docs/checkpoints.md, "MindSpore numerics"); like timm's `tf_` models, the prefix names the weights'
framework. The names `<name>.tpami_in1k` of those weights load them with a FutureWarning.
"""
import warnings
from typing import Any, Dict, Optional, Tuple, Type, Union

import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import create_conv2d, create_pool2d
from timm.models import build_model_with_cfg, generate_default_cfgs, model_entrypoint, register_model, \
    split_model_name_tag
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from ..checkpoints import MINDSPORE_PREFIX, RESNET_RENAMES, check_fit, rename_key
from ..layers import GCPHead, check_pool_type, min_input_side
from ._head import GCPClassifierMixin, check_pretrained_arg, pop_gcp_args
from .releases import check_pretrained_source, release_cfgs
from .sources import pretrained_fields

__all__ = [
    'GCPResNet', 'checkpoint_filter_fn', 'check_output_stride', 'DEPRECATED_NAMES', 'MINDSPORE_NUMERICS',
    'OUTPUT_STRIDE', 'REDUCE_CONV_WEIGHT',
]


# layer4 at stride 1 without dilation: features at 1/16 of the input
OUTPUT_STRIDE = 16


def check_output_stride(output_stride: int) -> None:
    """Raise a ValueError for an output_stride other than the GCP ResNets' own 16.

    timm's ResNet reaches 16 or 8 by dilating the stages it un-strides, and 32 keeps layer4's stride 2:
    either is another network than the papers' (and than the authors' weights were trained as).
    """
    if output_stride != OUTPUT_STRIDE:
        raise ValueError(
            f'output_stride={output_stride!r}: the GCP ResNets run layer4 at stride 1 without dilation, so their '
            f'features are 1/{OUTPUT_STRIDE} of the input, as in the papers; {OUTPUT_STRIDE} is the only '
            f'output_stride they take. For a GCP head on timm\'s ResNet at another stride (timm dilates for 8 and '
            f'16), use the generic model, e.g. timm.create_model(\'gcp_isqrt\', backbone=\'resnet50\', '
            f'output_stride={output_stride!r}) (docs/architectures.md, "Head arguments")')


def _remove_stride(stage: nn.Sequential) -> None:
    """Run a stage at stride 1 without dilation, as the GCP papers do (timm's output_stride dilates)."""
    for module in stage[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (1, 1)


def _pad_same(module: nn.Module) -> None:
    """Give every conv and max pool below `module` TensorFlow 'same' padding.

    Where that padding is asymmetric (stride 2, e.g. the 7x7 stem pads 2 before and 3 after at
    even sizes), timm's `Conv2dSame` / `MaxPool2dSame` pad on the fly (the pool with -inf);
    elsewhere it equals PyTorch's symmetric padding. Parameters are moved, not copied.
    """
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            conv = create_conv2d(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                stride=child.stride,
                dilation=child.dilation,
                groups=child.groups,
                bias=child.bias is not None,
                padding='same',
                device=child.weight.device,
                dtype=child.weight.dtype,
            )
            conv.weight, conv.bias = child.weight, child.bias
            setattr(module, name, conv)
        elif isinstance(child, nn.MaxPool2d):
            setattr(module, name, create_pool2d('max', child.kernel_size, child.stride, padding='same'))
        else:
            _pad_same(child)


def _set_bn_eps(
        model: nn.Module,
        bn_eps: Optional[float],
        stem_bn_eps: Optional[float],
        down_bn_eps: Optional[float],
) -> None:
    """Set the eps of the stem BN (`bn1`), the shortcut BNs and all other BNs; None keeps the layer's own."""
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            eps = stem_bn_eps if name == 'bn1' else down_bn_eps if '.downsample.' in name else bn_eps
            if eps is not None:
                module.eps = eps


class GCPResNet(GCPClassifierMixin, ResNet):
    """ResNet whose last stage keeps stride 1 and whose average pooling is replaced by a GCP head."""

    def __init__(
            self,
            block: Union[Type[BasicBlock], Type[Bottleneck]],
            layers: Tuple[int, ...],
            num_classes: int = 1000,
            in_chans: int = 3,
            global_pool: str = 'gcp',
            drop_rate: float = 0.0,
            output_stride: int = OUTPUT_STRIDE,
            pad_type: str = '',
            bn_eps: Optional[float] = None,
            stem_bn_eps: Optional[float] = None,
            down_bn_eps: Optional[float] = None,
            device=None,
            dtype=None,
            **kwargs: Any,
    ) -> None:
        """
        Args:
            block, layers, in_chans: timm ResNet settings.
            num_classes: Classifier outputs; 0 returns the pooled covariance vector.
            global_pool: 'gcp', or '' for unpooled features (with num_classes=0).
            drop_rate: Dropout on the covariance vector before the classifier.
            output_stride: 16, the only stride of these networks (`check_output_stride`).
            pad_type: '' (PyTorch symmetric padding) or 'same' (TensorFlow 'same' padding of every conv
                and the stem max pool, as the MindSpore ResNet-50 uses).
            bn_eps: Eps of the residual blocks' BNs and of the GCP reduction's BN (None: 1e-5).
            stem_bn_eps: Eps of the stem BN (None: bn_eps).
            down_bn_eps: Eps of the shortcut projection BNs (None: bn_eps).
            **kwargs: `gcp_X` sets the head's `GCPPool` argument X (gcp_dim, 0 for no reduction; gcp_norm,
                gcp_iters, gcp_power, gcp_dropcov, gcp_dropcov_scale, gcp_act, gcp_expand); the rest are timm ResNet
                settings (stem, drop path, ...).
        """
        if pad_type not in ('', 'same'):
            raise ValueError(f"unknown pad_type {pad_type!r}, expected '' or 'same'")
        check_pool_type(global_pool, num_classes, 'global_pool')
        check_output_stride(output_stride)
        gcp_args = pop_gcp_args(kwargs)
        dd = {'device': device, 'dtype': dtype}
        super().__init__(block, layers, num_classes=0, in_chans=in_chans, global_pool='', **kwargs, **dd)
        del self.global_pool, self.fc
        _remove_stride(self.layer4)
        if pad_type == 'same':
            _pad_same(self)
        _set_bn_eps(
            self,
            bn_eps,
            bn_eps if stem_bn_eps is None else stem_bn_eps,
            bn_eps if down_bn_eps is None else down_bn_eps,
        )
        self.feature_info[-1]['reduction'] = self.feature_info[-2]['reduction']
        self.drop_rate = drop_rate
        self.num_classes = num_classes
        self.head = GCPHead(
            self.num_features,
            num_classes=num_classes,
            pool_type=global_pool,
            drop_rate=drop_rate,
            bn_eps=1e-5 if bn_eps is None else bn_eps,
            min_input=min_input_side(self.feature_info[-1]['reduction']),  # names it in the pooling's errors
            **gcp_args,
            **dd,
        )
        self.head_hidden_size = self.head.num_features

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


REDUCE_CONV_WEIGHT = 'head.global_pool.reduce.conv.weight'  # the key that tells a checkpoint's d


def _describe_reduction(state_dict: Dict[str, torch.Tensor]) -> str:
    """The GCP head widths that must agree: the reduction conv and the classifier's inputs (its outputs adapt)."""
    conv = state_dict.get(REDUCE_CONV_WEIGHT)
    fc = state_dict.get('head.fc.weight')
    parts = []
    if conv is not None:
        parts.append(f'reduction {tuple(conv.shape)} (d={conv.shape[0]})')
    if fc is not None:
        parts.append(f'{fc.shape[1]} classifier inputs')
    return ', '.join(parts)


def _reduction_detail(model_sd: Dict[str, torch.Tensor], state_dict: Dict[str, torch.Tensor]) -> str:
    """Both sides' GCP head widths where they differ, else '' (the misfit is elsewhere and the lists name it)."""
    ours, theirs = _describe_reduction(model_sd), _describe_reduction(state_dict) or 'no GCP head'
    return f'{ours}; checkpoint has {theirs}' if ours != theirs else ''


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: GCPResNet) -> Dict[str, torch.Tensor]:
    """Map an original GCP ResNet checkpoint onto this model's keys and check that it fits.

    Accepts timm-gcp's own layout and those of the authors' PyTorch checkpoints (`RESNET_RENAMES`:
    fast-MPN-COV's released weights and training checkpoints, the `module.`-prefixed CVPR'20 /
    DropCov checkpoints), bare or under 'state_dict'.
    Raises ValueError naming every missing, unexpected or mis-shaped tensor; the classifier and the
    first conv are left to timm's loader, which adapts them to `num_classes` and `in_chans`.
    """
    state_dict = state_dict.get('state_dict', state_dict)
    out = {rename_key(k, RESNET_RENAMES): v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    model_sd = model.state_dict()
    mismatched = []
    ckpt_fc, model_fc = out.get('head.fc.weight'), model_sd.get('head.fc.weight')
    if REDUCE_CONV_WEIGHT in out and ckpt_fc is not None and model_fc is not None \
            and ckpt_fc.shape[1] != model_fc.shape[1]:
        # timm adapts the classifier's outputs, never its inputs: the covariance widths must agree
        mismatched.append(f'head.fc.weight: checkpoint {tuple(ckpt_fc.shape)} vs model {tuple(model_fc.shape)}')
    check_fit(
        out,
        model_sd,
        type(model).__name__,
        adaptable={'conv1.weight', 'head.fc.weight', 'head.fc.bias'},
        mismatched=mismatched,
        detail=_reduction_detail(model_sd, out),
    )
    return out


# The numerics the TPAMI'23 MindSpore ResNets were trained with, by block type (docs/checkpoints.md,
# "MindSpore numerics"). ResNet-18/34: explicit symmetric padding (= PyTorch), BN eps 1e-4 in the blocks
# and the reduction, 1e-5 in the stem and the shortcuts. ResNet-50: 'same' padding for every conv and the
# stem max pool, eps 1e-4 for all.
MINDSPORE_NUMERICS = {
    'basic': dict(bn_eps=1e-4, stem_bn_eps=1e-5, down_bn_eps=1e-5),
    'bottleneck': dict(pad_type='same', bn_eps=1e-4),
}

# names before the MindSpore models became `ms_` architectures -> their current names
DEPRECATED_NAMES = {
    f'{arch}.tpami_in1k': f'{MINDSPORE_PREFIX}{arch}.tpami_in1k'
    for arch in ('resnet18_isqrt', 'resnet34_isqrt', 'resnet50_isqrt',
                 'resnet18_dropcov', 'resnet34_dropcov', 'resnet50_dropcov')
}


def _create_gcp_resnet(variant: str, pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    check_pretrained_arg(variant, pretrained)
    deprecated = f"{variant}.{kwargs.get('pretrained_cfg')}"
    if deprecated in DEPRECATED_NAMES:
        current, tag = split_model_name_tag(DEPRECATED_NAMES[deprecated])
        warnings.warn(f'{deprecated} is now {current}.{tag}: the MindSpore numerics are an architecture of '
                      f'their own', FutureWarning, stacklevel=4)
        # the ms_ entrypoint adds its numerics to the architecture args these kwargs already hold
        return model_entrypoint(current)(pretrained, **dict(kwargs, pretrained_cfg=tag))
    if pretrained:
        check_pretrained_source(variant, kwargs)
    return build_model_with_cfg(
        GCPResNet,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        **kwargs,
    )


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (14, 14),
        'crop_pct': 0.875, 'interpolation': 'bilinear',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'conv1', 'classifier': 'head.fc',
        **kwargs,
    }


_MPNCOV_SOURCE = pretrained_fields('mpncov', 'jiangtaoxie/MPN-COV')

default_cfgs = generate_default_cfgs({
    # the authors' weights (`RELEASES`): fast-MPN-COV, the CVPR'20 study, DropCov, the TPAMI'23 MindSpore models
    **release_cfgs(
        _cfg,
        'resnet18_isqrt_d256', 'resnet34_isqrt_d256', 'resnet50_isqrt_d256', 'resnet101_isqrt_d256', 'resnet50_isqrt',
        'resnet34_dropcov', 'resnet50_dropcov', 'resnet101_dropcov',
        'ms_resnet18_isqrt', 'ms_resnet34_isqrt', 'ms_resnet50_isqrt',
        'ms_resnet18_dropcov', 'ms_resnet34_dropcov', 'ms_resnet50_dropcov',
    ),
    **{name: _cfg() for name in (
        'resnet152_isqrt_d256', 'resnet18_isqrt', 'resnet34_isqrt', 'resnet101_isqrt', 'resnet152_isqrt',
        'resnet18_dropcov', 'resnet152_dropcov',
    )},
    # MPN-COV (exact matrix square root by eigen-decomposition); the published MatConvNet weights are a
    # ResNet v1 with biased convs, which these v1.5 models do not fit
    **{name: _cfg(**_MPNCOV_SOURCE) for name in (
        'resnet50_mpncov', 'resnet50_mpncov_d256', 'resnet101_mpncov', 'resnet101_mpncov_d256',
    )},
})

_ISQRT = dict(gcp_norm='isqrt')
_DROPCOV = dict(gcp_norm='none', gcp_dropcov=True)
_MPNCOV = dict(gcp_norm='mpn')
_MS_BASIC = MINDSPORE_NUMERICS['basic']
_MS_BOTTLENECK = MINDSPORE_NUMERICS['bottleneck']
_R18 = dict(block=BasicBlock, layers=(2, 2, 2, 2))
_R34 = dict(block=BasicBlock, layers=(3, 4, 6, 3))
_R50 = dict(block=Bottleneck, layers=(3, 4, 6, 3))
_R101 = dict(block=Bottleneck, layers=(3, 4, 23, 3))
_R152 = dict(block=Bottleneck, layers=(3, 8, 36, 3))


@register_model
def resnet18_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-18 with an iSQRT-COV head (128-d reduction, 5 Newton-Schulz iterations)."""
    model_args = dict(**_R18, **_ISQRT, gcp_dim=128)
    return _create_gcp_resnet('resnet18_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet34_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-34 with an iSQRT-COV head (128-d reduction)."""
    model_args = dict(**_R34, **_ISQRT, gcp_dim=128)
    return _create_gcp_resnet('resnet34_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet50_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-50 with an iSQRT-COV head (128-d reduction)."""
    model_args = dict(**_R50, **_ISQRT, gcp_dim=128)
    return _create_gcp_resnet('resnet50_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet101_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-101 with an iSQRT-COV head (128-d reduction)."""
    model_args = dict(**_R101, **_ISQRT, gcp_dim=128)
    return _create_gcp_resnet('resnet101_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet152_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-152 with an iSQRT-COV head (128-d reduction)."""
    model_args = dict(**_R152, **_ISQRT, gcp_dim=128)
    return _create_gcp_resnet('resnet152_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet18_isqrt_d256(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-18 with an iSQRT-COV head (256-d reduction, as in CVPR'18 / CVPR'20)."""
    model_args = dict(**_R18, **_ISQRT, gcp_dim=256)
    return _create_gcp_resnet('resnet18_isqrt_d256', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet34_isqrt_d256(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-34 with an iSQRT-COV head (256-d reduction)."""
    model_args = dict(**_R34, **_ISQRT, gcp_dim=256)
    return _create_gcp_resnet('resnet34_isqrt_d256', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet50_isqrt_d256(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-50 with an iSQRT-COV head (256-d reduction): iSQRT-COV-ResNet-50 of fast-MPN-COV."""
    model_args = dict(**_R50, **_ISQRT, gcp_dim=256)
    return _create_gcp_resnet('resnet50_isqrt_d256', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet101_isqrt_d256(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-101 with an iSQRT-COV head (256-d reduction)."""
    model_args = dict(**_R101, **_ISQRT, gcp_dim=256)
    return _create_gcp_resnet('resnet101_isqrt_d256', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet152_isqrt_d256(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-152 with an iSQRT-COV head (256-d reduction)."""
    model_args = dict(**_R152, **_ISQRT, gcp_dim=256)
    return _create_gcp_resnet('resnet152_isqrt_d256', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet18_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-18 with a DropCov head (128-d reduction, adaptive channel dropout, no square root)."""
    model_args = dict(**_R18, **_DROPCOV, gcp_dim=128)
    return _create_gcp_resnet('resnet18_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet34_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-34 with a DropCov head (128-d reduction)."""
    model_args = dict(**_R34, **_DROPCOV, gcp_dim=128)
    return _create_gcp_resnet('resnet34_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet50_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-50 with a DropCov head (128-d reduction)."""
    model_args = dict(**_R50, **_DROPCOV, gcp_dim=128)
    return _create_gcp_resnet('resnet50_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet101_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-101 with a DropCov head (128-d reduction)."""
    model_args = dict(**_R101, **_DROPCOV, gcp_dim=128)
    return _create_gcp_resnet('resnet101_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet152_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-152 with a DropCov head (128-d reduction)."""
    model_args = dict(**_R152, **_DROPCOV, gcp_dim=128)
    return _create_gcp_resnet('resnet152_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet50_mpncov(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-50 with an MPN-COV head (exact eigen square root, 128-d reduction)."""
    model_args = dict(**_R50, **_MPNCOV, gcp_dim=128)
    return _create_gcp_resnet('resnet50_mpncov', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet101_mpncov(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-101 with an MPN-COV head (128-d reduction)."""
    model_args = dict(**_R101, **_MPNCOV, gcp_dim=128)
    return _create_gcp_resnet('resnet101_mpncov', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet50_mpncov_d256(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-50 with an MPN-COV head (256-d reduction, as in ICCV'17)."""
    model_args = dict(**_R50, **_MPNCOV, gcp_dim=256)
    return _create_gcp_resnet('resnet50_mpncov_d256', pretrained, **dict(model_args, **kwargs))


@register_model
def resnet101_mpncov_d256(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-101 with an MPN-COV head (256-d reduction)."""
    model_args = dict(**_R101, **_MPNCOV, gcp_dim=256)
    return _create_gcp_resnet('resnet101_mpncov_d256', pretrained, **dict(model_args, **kwargs))


@register_model
def ms_resnet18_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-18 with an iSQRT-COV head (128-d), MindSpore numerics (BN eps 1e-4 in the blocks): TPAMI'23."""
    model_args = dict(**_R18, **_ISQRT, gcp_dim=128, **_MS_BASIC)
    return _create_gcp_resnet('ms_resnet18_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def ms_resnet34_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-34 with an iSQRT-COV head (128-d), MindSpore numerics (BN eps 1e-4 in the blocks): TPAMI'23."""
    model_args = dict(**_R34, **_ISQRT, gcp_dim=128, **_MS_BASIC)
    return _create_gcp_resnet('ms_resnet34_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def ms_resnet50_isqrt(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-50 with an iSQRT-COV head (128-d), MindSpore numerics ('same' padding, BN eps 1e-4): TPAMI'23."""
    model_args = dict(**_R50, **_ISQRT, gcp_dim=128, **_MS_BOTTLENECK)
    return _create_gcp_resnet('ms_resnet50_isqrt', pretrained, **dict(model_args, **kwargs))


@register_model
def ms_resnet18_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-18 with a DropCov head (128-d), MindSpore numerics (BN eps 1e-4 in the blocks): TPAMI'23."""
    model_args = dict(**_R18, **_DROPCOV, gcp_dim=128, **_MS_BASIC)
    return _create_gcp_resnet('ms_resnet18_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def ms_resnet34_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-34 with a DropCov head (128-d), MindSpore numerics (BN eps 1e-4 in the blocks): TPAMI'23."""
    model_args = dict(**_R34, **_DROPCOV, gcp_dim=128, **_MS_BASIC)
    return _create_gcp_resnet('ms_resnet34_dropcov', pretrained, **dict(model_args, **kwargs))


@register_model
def ms_resnet50_dropcov(pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    """ResNet-50 with a DropCov head (128-d), MindSpore numerics ('same' padding, BN eps 1e-4): TPAMI'23."""
    model_args = dict(**_R50, **_DROPCOV, gcp_dim=128, **_MS_BOTTLENECK)
    return _create_gcp_resnet('ms_resnet50_dropcov', pretrained, **dict(model_args, **kwargs))
