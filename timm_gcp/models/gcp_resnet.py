"""ResNets with global covariance pooling heads (iSQRT-COV, DropCov, MPN-COV).

timm's ResNet (v1.5: stride on the 3x3 conv) with the last stage at stride 1 and no dilation, so
the features are 14x14 at 224 px, followed by the GCP head of `timm_gcp.layers.GCPHead`: a 1x1
reduction to `gcp_dim` channels, covariance, normalization, upper triangle and one Linear.

Methods: iSQRT-COV (CVPR'18), the CVPR'20 and TPAMI'23 optimization studies, DropCov (NeurIPS'22),
MPN-COV (ICCV'17); titles, links and source repositories are in `timm_gcp.models.sources`, the
original architectures in docs/architectures.md, "GCP ResNets".

Names: `<backbone>_<method>[_d<dim>]`, dim 128 unless `_d256`. Head settings are keyword arguments
(`gcp_dim`, `gcp_norm`, `gcp_iters`, `gcp_power`, `gcp_dropcov`, `gcp_dropcov_scale`), so
`--model-kwargs gcp_iters=3` reaches them from timm's scripts.

`ms_<name>` models are the same architectures with the numerics of the TPAMI'23 MindSpore
weights: TF-style 'same' padding (ResNet-50) and BatchNorm eps 1e-4 in places
(docs/checkpoints.md, "MindSpore numerics"). Like timm's `tf_` models, the prefix names the
framework the weights come from, and the settings are the model's defaults (`pad_type`, `bn_eps`,
`stem_bn_eps`, `down_bn_eps`), so `timm.create_model('ms_resnet50_isqrt')` trains with them too.
The earlier names `<name>.tpami_in1k` still load, with a FutureWarning.
"""
import warnings
from typing import Any, Dict, Optional, Tuple, Type, Union

import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import create_conv2d, create_pool2d, get_device_dtype
from timm.models import build_model_with_cfg, generate_default_cfgs, model_entrypoint, register_model, \
    split_model_name_tag
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from ..checkpoints.layouts import MINDSPORE_PREFIX, RESNET_RENAMES, rename_key
from ..layers import GCPHead, check_pool_type, reset_pool_type
from .releases import RELEASES, check_pretrained_source
from .sources import pretrained_fields

__all__ = [
    'GCPResNet', 'checkpoint_filter_fn', 'DEPRECATED_NAMES', 'MINDSPORE_NUMERICS', 'REDUCE_CONV_WEIGHT',
]


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


class GCPResNet(ResNet):
    """ResNet whose last stage keeps stride 1 and whose average pooling is replaced by a GCP head."""

    def __init__(
            self,
            block: Union[Type[BasicBlock], Type[Bottleneck]],
            layers: Tuple[int, ...],
            num_classes: int = 1000,
            in_chans: int = 3,
            global_pool: str = 'gcp',
            drop_rate: float = 0.0,
            gcp_dim: Optional[int] = 128,
            gcp_norm: str = 'isqrt',
            gcp_iters: Optional[int] = None,
            gcp_power: Optional[float] = None,
            gcp_dropcov: bool = False,
            gcp_dropcov_scale: Optional[float] = None,
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
            block, layers, in_chans, **kwargs: timm ResNet settings (stem, norm, drop path, ...).
            num_classes: Classifier outputs; 0 returns the pooled covariance vector.
            global_pool: 'gcp', or '' for unpooled features (with num_classes=0).
            drop_rate: Dropout on the covariance vector before the classifier.
            gcp_dim: Reduction channels before the covariance (None: no reduction).
            gcp_norm: 'isqrt' (Newton-Schulz square root), 'mpn' (eigen power) or 'none'.
            gcp_iters: Newton-Schulz iterations of 'isqrt' (None: 5); an error with another norm.
            gcp_power: Matrix power of 'mpn' (None: 0.5); an error with another norm.
            gcp_dropcov: DropCov's adaptive channel dropout (training only) before the covariance.
            gcp_dropcov_scale: DropCov's rate constant, > 0 (None: 10); an error without gcp_dropcov.
            pad_type: '' (PyTorch symmetric padding) or 'same' (TensorFlow 'same' padding of every conv
                and the stem max pool, as the MindSpore ResNet-50 uses).
            bn_eps: Eps of the residual blocks' BNs and of the GCP reduction's BN (None: 1e-5).
            stem_bn_eps: Eps of the stem BN (None: bn_eps).
            down_bn_eps: Eps of the shortcut projection BNs (None: bn_eps).
        """
        if pad_type not in ('', 'same'):
            raise ValueError(f"unknown pad_type {pad_type!r}, expected '' or 'same'")
        check_pool_type(global_pool, num_classes, 'global_pool')
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
        self._gcp_args = dict(
            reduce_dim=gcp_dim,
            norm=gcp_norm,
            iters=gcp_iters,
            power=gcp_power,
            dropcov=gcp_dropcov,
            dropcov_scale=gcp_dropcov_scale,
            drop_rate=drop_rate,
            bn_eps=1e-5 if bn_eps is None else bn_eps,
            feat_stride=self.feature_info[-1]['reduction'],  # names the smallest input in the pooling's errors
        )
        self.head = GCPHead(self.num_features, num_classes=num_classes, pool_type=global_pool, **self._gcp_args, **dd)
        self.head_hidden_size = self.head.num_features

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> Union[str, nn.Module]:
        return 'head.fc' if name_only else self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier; `global_pool=''` returns unpooled features, None keeps the pooling.

        A classifier on unpooled features (`num_classes > 0`, None) brings a new GCP head back.
        """
        pool_type = reset_pool_type(self.head.pool_type, global_pool, num_classes)
        dd = get_device_dtype(self)
        self.num_classes = num_classes
        if pool_type and (not self.head.pool_type or self.head.in_features != self.num_features):
            # the pooling was removed (or the trunk pruned): a new GCP head on the current features
            self.head = GCPHead(self.num_features, num_classes=num_classes, pool_type=pool_type, **self._gcp_args, **dd)
            self.head.train(self.training)
        else:
            self.head.reset(num_classes, pool_type, **dd)
        self.head_hidden_size = self.head.num_features

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


REDUCE_CONV_WEIGHT = 'head.global_pool.reduce.conv.weight'  # the key that tells a checkpoint's d


def _describe_reduction(state_dict: Dict[str, torch.Tensor]) -> str:
    conv = state_dict.get(REDUCE_CONV_WEIGHT)
    fc = state_dict.get('head.fc.weight')
    parts = []
    if conv is not None:
        parts.append(f'reduction {tuple(conv.shape)} (d={conv.shape[0]})')
    if fc is not None:
        parts.append(f'fc {tuple(fc.shape)}')
    return ', '.join(parts)


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
    adaptable = {'conv1.weight', 'head.fc.weight', 'head.fc.bias'}

    mismatched = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(model_sd[k].shape)}'
        for k, v in out.items() if k in model_sd and k not in adaptable and v.shape != model_sd[k].shape
    ]
    if REDUCE_CONV_WEIGHT in out and REDUCE_CONV_WEIGHT in model_sd:
        ckpt_fc, model_fc = out.get('head.fc.weight'), model_sd.get('head.fc.weight')
        if ckpt_fc is not None and model_fc is not None and ckpt_fc.shape[1] != model_fc.shape[1]:
            mismatched.append(f'head.fc.weight: checkpoint {tuple(ckpt_fc.shape)} vs model {tuple(model_fc.shape)}')
    missing = [k for k in model_sd if k not in out and not k.endswith('num_batches_tracked') and k not in adaptable]
    unexpected = [k for k in out if k not in model_sd and k not in adaptable]
    if mismatched or missing or unexpected:
        lines = [f'checkpoint does not fit {type(model).__name__} '
                 f'({_describe_reduction(model_sd)}); checkpoint has {_describe_reduction(out) or "no GCP head"}']
        if mismatched:
            lines.append('mis-shaped: ' + '; '.join(mismatched))
        if missing:
            lines.append('missing: ' + ', '.join(missing))
        if unexpected:
            lines.append('unexpected: ' + ', '.join(unexpected))
        raise ValueError('\n'.join(lines))
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


def _hub(name: str, paper: str, repo: str) -> Dict[str, Any]:
    """The cfg of the authors' weights for `name`, converted from `repo`'s, in their Hub repo (`RELEASES`)."""
    return _cfg(hf_hub_id=RELEASES[name].hub_id, **pretrained_fields(paper, repo))


_FMPN = ('isqrt', 'jiangtaoxie/fast-MPN-COV')
_GCPO = ('gcp_opt', 'ZhangLi-CS/GCP_Optimization')
_DC = ('dropcov', 'mingzeG/DropCov')
_TPAMI = ('tpami', 'Terror03/GCP-OPT')
_TPAMI_DC = ('tpami', 'Sherry1945/Dropcov_mindspore')

default_cfgs = generate_default_cfgs({
    # iSQRT-COV, 256-d reduction: fast-MPN-COV (CVPR'18) and the CVPR'20 LR-schedule study
    'resnet18_isqrt_d256.gcp_in1k': _hub('resnet18_isqrt_d256.gcp_in1k', *_GCPO),
    'resnet18_isqrt_d256.gcp_lradju_in1k': _hub('resnet18_isqrt_d256.gcp_lradju_in1k', *_GCPO),
    'resnet18_isqrt_d256.gcp_lrfast_in1k': _hub('resnet18_isqrt_d256.gcp_lrfast_in1k', *_GCPO),
    'resnet34_isqrt_d256.gcp_in1k': _hub('resnet34_isqrt_d256.gcp_in1k', *_GCPO),
    'resnet34_isqrt_d256.gcp_lradju_in1k': _hub('resnet34_isqrt_d256.gcp_lradju_in1k', *_GCPO),
    'resnet34_isqrt_d256.gcp_lrfast_in1k': _hub('resnet34_isqrt_d256.gcp_lrfast_in1k', *_GCPO),
    'resnet50_isqrt_d256.gcp_in1k': _hub('resnet50_isqrt_d256.gcp_in1k', *_GCPO),
    'resnet50_isqrt_d256.fmpn_in1k': _hub('resnet50_isqrt_d256.fmpn_in1k', *_FMPN),
    'resnet50_isqrt_d256.gcp_lradju_in1k': _hub('resnet50_isqrt_d256.gcp_lradju_in1k', *_GCPO),
    'resnet50_isqrt_d256.gcp_lrfast_in1k': _hub('resnet50_isqrt_d256.gcp_lrfast_in1k', *_GCPO),
    'resnet101_isqrt_d256.gcp_in1k': _hub('resnet101_isqrt_d256.gcp_in1k', *_GCPO),
    'resnet101_isqrt_d256.fmpn_in1k': _hub('resnet101_isqrt_d256.fmpn_in1k', *_FMPN),
    'resnet101_isqrt_d256.gcp_lradju_in1k': _hub('resnet101_isqrt_d256.gcp_lradju_in1k', *_GCPO),
    'resnet101_isqrt_d256.gcp_lrfast_in1k': _hub('resnet101_isqrt_d256.gcp_lrfast_in1k', *_GCPO),
    'resnet152_isqrt_d256': _cfg(),

    # iSQRT-COV, 128-d reduction: the CVPR'20 128-d ResNet-50
    'resnet18_isqrt': _cfg(),
    'resnet34_isqrt': _cfg(),
    'resnet50_isqrt.gcp_in1k': _hub('resnet50_isqrt.gcp_in1k', *_GCPO),
    'resnet50_isqrt.gcp_lradju_in1k': _hub('resnet50_isqrt.gcp_lradju_in1k', *_GCPO),
    'resnet101_isqrt': _cfg(),
    'resnet152_isqrt': _cfg(),

    # DropCov, 128-d reduction: the NeurIPS'22 PyTorch models
    'resnet18_dropcov': _cfg(),
    'resnet34_dropcov.dc_in1k': _hub('resnet34_dropcov.dc_in1k', *_DC),
    'resnet50_dropcov.dc_in1k': _hub('resnet50_dropcov.dc_in1k', *_DC),
    'resnet101_dropcov.dc_in1k': _hub('resnet101_dropcov.dc_in1k', *_DC),
    'resnet152_dropcov': _cfg(),

    # MPN-COV (exact matrix square root by eigen-decomposition); the published MatConvNet weights are a
    # ResNet v1 with biased convs, which these v1.5 models do not fit
    'resnet50_mpncov': _cfg(**pretrained_fields('mpncov', 'jiangtaoxie/MPN-COV')),
    'resnet50_mpncov_d256': _cfg(**pretrained_fields('mpncov', 'jiangtaoxie/MPN-COV')),
    'resnet101_mpncov': _cfg(**pretrained_fields('mpncov', 'jiangtaoxie/MPN-COV')),
    'resnet101_mpncov_d256': _cfg(**pretrained_fields('mpncov', 'jiangtaoxie/MPN-COV')),

    # the TPAMI'23 MindSpore models (iSQRT-COV and DropCov, 128-d), with their numerics
    'ms_resnet18_isqrt.tpami_in1k': _hub('ms_resnet18_isqrt.tpami_in1k', *_TPAMI),
    'ms_resnet34_isqrt.tpami_in1k': _hub('ms_resnet34_isqrt.tpami_in1k', *_TPAMI),
    'ms_resnet50_isqrt.tpami_in1k': _hub('ms_resnet50_isqrt.tpami_in1k', *_TPAMI),
    'ms_resnet18_dropcov.tpami_in1k': _hub('ms_resnet18_dropcov.tpami_in1k', *_TPAMI_DC),
    'ms_resnet34_dropcov.tpami_in1k': _hub('ms_resnet34_dropcov.tpami_in1k', *_TPAMI_DC),
    'ms_resnet50_dropcov.tpami_in1k': _hub('ms_resnet50_dropcov.tpami_in1k', *_TPAMI_DC),
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
