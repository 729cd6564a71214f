"""ResNets with global covariance pooling heads (iSQRT-COV, DropCov, MPN-COV).

timm's ResNet (v1.5: stride on the 3x3 conv) with the last stage at stride 1 and no dilation, so
the features are 14x14 at 224 px, followed by the GCP head of `timm_gcp.layers.GCPHead`: a 1x1
reduction to `gcp_dim` channels, covariance, normalization, upper triangle and one Linear.

Papers:
    iSQRT-COV: Towards Faster Training of Global Covariance Pooling Networks by Iterative Matrix
        Square Root Normalization (Li et al., CVPR 2018) - https://arxiv.org/abs/1712.01034
    What Deep CNNs Benefit from Global Covariance Pooling: An Optimization Perspective
        (Wang et al., CVPR 2020) - https://arxiv.org/abs/2003.11241
    DropCov: A Simple yet Effective Method for Improving Deep Architectures (Wang et al., NeurIPS 2022)
    Towards a Deeper Understanding of Global Covariance Pooling in Deep Learning: An Optimization
        Perspective (Wang et al., TPAMI 2023)
    MPN-COV: Is Second-order Information Helpful for Large-scale Visual Recognition?
        (Li et al., ICCV 2017) - https://arxiv.org/abs/1703.08050

Names: `<backbone>_<method>[_d<dim>]`, dim 128 unless `_d256`. Head settings are keyword arguments
(`gcp_dim`, `gcp_norm`, `gcp_iters`, `gcp_power`, `gcp_dropcov`, `gcp_dropcov_scale`), so
`--model-kwargs gcp_iters=3` reaches them from timm's scripts.

Weights carry the numerics they were trained with: the TPAMI'23 MindSpore ResNets use TF-style
'same' padding (ResNet-50) and BatchNorm eps 1e-4 in places. Those are model settings too
(`pad_type`, `bn_eps`, `stem_bn_eps`, `down_bn_eps`), and `TAG_MODEL_ARGS` holds the settings of
each tag whose weights need them. A pretrained cfg cannot carry model kwargs, so the factory adds
them whenever the tag is named (`resnet50_isqrt.tpami_in1k`) or its weights are loaded
(`pretrained=True` resolving to that tag, no other weight file in the overlay); explicit kwargs
win, and an untagged model created without the tag's weights keeps timm's PyTorch defaults.
They are recorded as model args, so Hub exports write them into config.json.
"""
import re
from typing import Any, Dict, Optional, Tuple, Type, Union

import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import create_conv2d, create_pool2d, get_device_dtype
from timm.models import PretrainedCfg, build_model_with_cfg, generate_default_cfgs, register_model, \
    resolve_pretrained_cfg
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from ..layers import GCPHead
from ._origins import DROPCOV_WEIGHTS

__all__ = ['GCPResNet', 'checkpoint_filter_fn', 'TAG_MODEL_ARGS', 'MINDSPORE_MODEL_ARGS']


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
            gcp_iters: int = 5,
            gcp_power: float = 0.5,
            gcp_dropcov: bool = False,
            gcp_dropcov_scale: float = 10.0,
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
            gcp_iters: Newton-Schulz iterations.
            gcp_power: Matrix power of 'mpn'.
            gcp_dropcov: DropCov's adaptive channel dropout (training only) before the covariance.
            gcp_dropcov_scale: DropCov's rate constant.
            pad_type: '' (PyTorch symmetric padding) or 'same' (TensorFlow 'same' padding of every conv
                and the stem max pool, as the MindSpore ResNet-50 uses).
            bn_eps: Eps of the residual blocks' BNs and of the GCP reduction's BN (None: 1e-5).
            stem_bn_eps: Eps of the stem BN (None: bn_eps).
            down_bn_eps: Eps of the shortcut projection BNs (None: bn_eps).
        """
        if pad_type not in ('', 'same'):
            raise ValueError(f"unknown pad_type {pad_type!r}, expected '' or 'same'")
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
            dim=gcp_dim,
            norm=gcp_norm,
            iters=gcp_iters,
            power=gcp_power,
            dropcov=gcp_dropcov,
            dropcov_scale=gcp_dropcov_scale,
            drop_rate=drop_rate,
            bn_eps=1e-5 if bn_eps is None else bn_eps,
        )
        self.head = GCPHead(self.num_features, num_classes=num_classes, pool_type=global_pool, **self._gcp_args, **dd)
        self.head_hidden_size = self.head.head_hidden_size
        for m in self.head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> Union[str, nn.Module]:
        return 'head.fc' if name_only else self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier; `global_pool=''` returns unpooled features, None keeps the pooling."""
        dd = get_device_dtype(self)
        self.num_classes = num_classes
        pool_type = self.head.pool_type if global_pool is None else global_pool
        if pool_type and (not self.head.pool_type or self.head.in_chs != self.num_features):
            # the pooling was removed (or the trunk pruned): a new GCP head on the current features
            self.head = GCPHead(self.num_features, num_classes=num_classes, pool_type=pool_type, **self._gcp_args, **dd)
            self.head.train(self.training)
        else:
            self.head.reset(num_classes, pool_type, **dd)
        self.head_hidden_size = self.head.head_hidden_size

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_HEAD_KEY_MAP = (
    (r'^layer_reduce\.', 'head.reduce.conv.'),
    (r'^layer_reduce_bn\.', 'head.reduce.bn.'),
    (r'^eca_layer\.conv\.', 'head.dropcov.conv.'),
    (r'^fc\.', 'head.fc.'),
    # fast-MPN-COV training checkpoints: features.module.<i> is the torchvision trunk as a Sequential
    (r'^features\.module\.0\.', 'conv1.'),
    (r'^features\.module\.1\.', 'bn1.'),
    (r'^features\.module\.([4-7])\.', lambda m: f'layer{int(m.group(1)) - 3}.'),
    (r'^features\.module\.8\.', 'head.reduce.conv.'),
    (r'^features\.module\.9\.', 'head.reduce.bn.'),
    (r'^representation\.conv_dr_block\.0\.', 'head.reduce.conv.'),
    (r'^representation\.conv_dr_block\.1\.', 'head.reduce.bn.'),
    (r'^classifier\.', 'head.fc.'),
)


def _remap_key(key: str) -> str:
    key = re.sub(r'^module\.', '', key)
    for pattern, repl in _HEAD_KEY_MAP:
        new_key, n = re.subn(pattern, repl, key)
        if n:
            return new_key
    return key


def _describe_reduction(state_dict: Dict[str, torch.Tensor]) -> str:
    conv = state_dict.get('head.reduce.conv.weight')
    fc = state_dict.get('head.fc.weight')
    parts = []
    if conv is not None:
        parts.append(f'reduction {tuple(conv.shape)} (d={conv.shape[0]})')
    if fc is not None:
        parts.append(f'fc {tuple(fc.shape)}')
    return ', '.join(parts)


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: GCPResNet) -> Dict[str, torch.Tensor]:
    """Map an original GCP ResNet checkpoint onto this model's keys and check that it fits.

    Accepts timm-gcp's own layout, fast-MPN-COV's plain state dicts (`layer_reduce*`, `fc`) and its
    training checkpoints (`features.module.<i>`, `representation.conv_dr_block`, `classifier`), and
    the `module.`-prefixed CVPR'20 / DropCov checkpoints (`eca_layer`), bare or under 'state_dict'.
    Raises ValueError naming every missing, unexpected or mis-shaped tensor; the classifier and the
    first conv are left to timm's loader, which adapts them to `num_classes` and `in_chans`.
    """
    state_dict = state_dict.get('state_dict', state_dict)
    out = {_remap_key(k): v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    model_sd = model.state_dict()
    adaptable = {'conv1.weight', 'head.fc.weight', 'head.fc.bias'}

    mismatched = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(model_sd[k].shape)}'
        for k, v in out.items() if k in model_sd and k not in adaptable and v.shape != model_sd[k].shape
    ]
    if 'head.reduce.conv.weight' in out and 'head.reduce.conv.weight' in model_sd:
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


# The numerics the TPAMI'23 MindSpore ResNets were trained with (gcp-methods.md section 10), by block type.
# ResNet-18/34: explicit symmetric padding (= PyTorch), BN eps 1e-4 in the blocks and the reduction, 1e-5 in
# the stem and the shortcuts. ResNet-50: 'same' padding for every conv and the stem max pool, eps 1e-4 for all.
MINDSPORE_MODEL_ARGS = {
    'basic': dict(bn_eps=1e-4, stem_bn_eps=1e-5, down_bn_eps=1e-5),
    'bottleneck': dict(pad_type='same', bn_eps=1e-4),
}

# model settings that the weights of a tag need, added by the factory (see the module docstring)
TAG_MODEL_ARGS = {
    'resnet18_isqrt.tpami_in1k': MINDSPORE_MODEL_ARGS['basic'],
    'resnet34_isqrt.tpami_in1k': MINDSPORE_MODEL_ARGS['basic'],
    'resnet50_isqrt.tpami_in1k': MINDSPORE_MODEL_ARGS['bottleneck'],
    'resnet18_dropcov.tpami_in1k': MINDSPORE_MODEL_ARGS['basic'],
    'resnet34_dropcov.tpami_in1k': MINDSPORE_MODEL_ARGS['basic'],
    'resnet50_dropcov.tpami_in1k': MINDSPORE_MODEL_ARGS['bottleneck'],
}


_WEIGHT_SOURCES = ('file', 'url', 'hf_hub_id', 'state_dict')


def _tag_model_args(
        variant: str,
        pretrained: bool,
        pretrained_cfg: Optional[Union[str, Dict[str, Any], PretrainedCfg]],
        pretrained_cfg_overlay: Optional[Dict[str, Any]],
) -> Dict[str, Any]:
    """Settings of the tag whose weights the model is built for.

    That is a named tag (`arch.tag`, `pretrained_cfg=tag` or a PretrainedCfg), or the default tag
    when its own weights are loaded (`pretrained=True`, no other weight file in the overlay). A
    Hub / local-dir config (a dict) brings its own settings in `model_args` and gets none here.
    """
    if isinstance(pretrained_cfg, str):
        tag = pretrained_cfg
    elif isinstance(pretrained_cfg, PretrainedCfg):
        tag = pretrained_cfg.tag
    elif isinstance(pretrained_cfg, dict):
        return {}
    elif pretrained and not any(k in (pretrained_cfg_overlay or {}) for k in _WEIGHT_SOURCES):
        tag = resolve_pretrained_cfg(variant).tag
    else:
        return {}
    return dict(TAG_MODEL_ARGS.get(f'{variant}.{tag}', {}))


def _create_gcp_resnet(variant: str, pretrained: bool = False, **kwargs: Any) -> GCPResNet:
    tag_args = _tag_model_args(variant, pretrained, kwargs.get('pretrained_cfg'), kwargs.get('pretrained_cfg_overlay'))
    model = build_model_with_cfg(
        GCPResNet,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        **dict(tag_args, **kwargs),
    )
    if tag_args:
        model._model_args = tag_args  # create_model adds the caller's kwargs on top; exports record both
    return model


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (14, 14),
        'crop_pct': 0.875, 'interpolation': 'bilinear',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'conv1', 'classifier': 'head.fc',
        **kwargs,
    }


def _hub(name: str, **kwargs: Any) -> Dict[str, Any]:
    return _cfg(hf_hub_id=f'timm-gcp/{name}', **kwargs)


_FMPN = dict(
    license='mit', origin_url='https://github.com/jiangtaoxie/fast-MPN-COV', paper_ids='arXiv:1712.01034',
    paper_name='Towards Faster Training of Global Covariance Pooling Networks by Iterative Matrix Square Root '
               'Normalization',
)
_GCPO = dict(
    license='unknown', origin_url='https://github.com/ZhangLi-CS/GCP_Optimization', paper_ids='arXiv:2003.11241',
    paper_name='What Deep CNNs Benefit from Global Covariance Pooling: An Optimization Perspective',
)
_TPAMI = dict(
    license='unknown', origin_url='https://github.com/Terror03/GCP-OPT',
    paper_name='Towards a Deeper Understanding of Global Covariance Pooling in Deep Learning: '
               'An Optimization Perspective',
)
_TPAMI_DC = dict(_TPAMI, origin_url='https://github.com/Sherry1945/Dropcov_mindspore')
_MPN = dict(
    license='mit', origin_url='https://github.com/jiangtaoxie/MPN-COV', paper_ids='arXiv:1703.08050',
    paper_name='Is Second-order Information Helpful for Large-scale Visual Recognition?',
)

default_cfgs = generate_default_cfgs({
    # iSQRT-COV, 256-d reduction: fast-MPN-COV (CVPR'18) and the CVPR'20 LR-schedule study
    'resnet18_isqrt_d256.gcp_in1k': _hub('resnet18_isqrt_d256.gcp_in1k', **_GCPO),
    'resnet18_isqrt_d256.gcp_lradju_in1k': _hub('resnet18_isqrt_d256.gcp_lradju_in1k', **_GCPO),
    'resnet18_isqrt_d256.gcp_lrfast_in1k': _hub('resnet18_isqrt_d256.gcp_lrfast_in1k', **_GCPO),
    'resnet34_isqrt_d256.gcp_in1k': _hub('resnet34_isqrt_d256.gcp_in1k', **_GCPO),
    'resnet34_isqrt_d256.gcp_lradju_in1k': _hub('resnet34_isqrt_d256.gcp_lradju_in1k', **_GCPO),
    'resnet34_isqrt_d256.gcp_lrfast_in1k': _hub('resnet34_isqrt_d256.gcp_lrfast_in1k', **_GCPO),
    'resnet50_isqrt_d256.gcp_in1k': _hub('resnet50_isqrt_d256.gcp_in1k', **_GCPO),
    'resnet50_isqrt_d256.fmpn_in1k': _hub('resnet50_isqrt_d256.fmpn_in1k', **_FMPN),
    'resnet50_isqrt_d256.gcp_lradju_in1k': _hub('resnet50_isqrt_d256.gcp_lradju_in1k', **_GCPO),
    'resnet50_isqrt_d256.gcp_lrfast_in1k': _hub('resnet50_isqrt_d256.gcp_lrfast_in1k', **_GCPO),
    'resnet101_isqrt_d256.gcp_in1k': _hub('resnet101_isqrt_d256.gcp_in1k', **_GCPO),
    'resnet101_isqrt_d256.fmpn_in1k': _hub('resnet101_isqrt_d256.fmpn_in1k', **_FMPN),
    'resnet101_isqrt_d256.gcp_lradju_in1k': _hub('resnet101_isqrt_d256.gcp_lradju_in1k', **_GCPO),
    'resnet101_isqrt_d256.gcp_lrfast_in1k': _hub('resnet101_isqrt_d256.gcp_lrfast_in1k', **_GCPO),
    'resnet152_isqrt_d256': _cfg(),

    # iSQRT-COV, 128-d reduction: the TPAMI'23 MindSpore models and the CVPR'20 128-d ResNet-50
    'resnet18_isqrt.tpami_in1k': _hub('resnet18_isqrt.tpami_in1k', **_TPAMI),
    'resnet34_isqrt.tpami_in1k': _hub('resnet34_isqrt.tpami_in1k', **_TPAMI),
    'resnet50_isqrt.gcp_in1k': _hub('resnet50_isqrt.gcp_in1k', **_GCPO),
    'resnet50_isqrt.tpami_in1k': _hub('resnet50_isqrt.tpami_in1k', **_TPAMI),
    'resnet50_isqrt.gcp_lradju_in1k': _hub('resnet50_isqrt.gcp_lradju_in1k', **_GCPO),
    'resnet101_isqrt': _cfg(),
    'resnet152_isqrt': _cfg(),

    # DropCov, 128-d reduction: NeurIPS'22 PyTorch models and the TPAMI'23 MindSpore models
    'resnet18_dropcov.tpami_in1k': _hub('resnet18_dropcov.tpami_in1k', **_TPAMI_DC),
    'resnet34_dropcov.dc_in1k': _hub('resnet34_dropcov.dc_in1k', **DROPCOV_WEIGHTS),
    'resnet34_dropcov.tpami_in1k': _hub('resnet34_dropcov.tpami_in1k', **_TPAMI_DC),
    'resnet50_dropcov.dc_in1k': _hub('resnet50_dropcov.dc_in1k', **DROPCOV_WEIGHTS),
    'resnet50_dropcov.tpami_in1k': _hub('resnet50_dropcov.tpami_in1k', **_TPAMI_DC),
    'resnet101_dropcov.dc_in1k': _hub('resnet101_dropcov.dc_in1k', **DROPCOV_WEIGHTS),
    'resnet152_dropcov': _cfg(),

    # MPN-COV (exact matrix square root by eigen-decomposition); the published MatConvNet weights are a
    # ResNet v1 with biased convs, which these v1.5 models do not fit
    'resnet50_mpncov': _cfg(**_MPN),
    'resnet50_mpncov_d256': _cfg(**_MPN),
    'resnet101_mpncov': _cfg(**_MPN),
    'resnet101_mpncov_d256': _cfg(**_MPN),
})

_ISQRT = dict(gcp_norm='isqrt')
_DROPCOV = dict(gcp_norm='none', gcp_dropcov=True)
_MPNCOV = dict(gcp_norm='mpn')
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
