"""ShuffleNetV2 with a GCP head: GCP_Optimization's ShuffleNetV2 x1.0 GCP (Wang et al., CVPR'20).

timm has no ShuffleNetV2, so the trunk is built here the timm way (feature_info, forward_intermediates,
pruning), with the module names of torchvision's `shufflenet_v2_x1_0`, which the authors' model copies.
The head is `GCPHead`: a 1x1 reduction to 256 channels with BN and ReLU6, iSQRT-COV, upper triangle and one
Linear, on the 7x7 map at 224 px (docs/architectures.md, "GCP_Optimization's MobileNetV2 and ShuffleNetV2").
"""
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, checkpoint, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices

from ..checkpoints import SHUFFLENETV2_RENAMES, check_fit, rename_key
from ..layers import GCPHead, check_pool_type, min_input_side
from ._head import GCPClassifierMixin, check_pretrained_arg, pop_gcp_args
from .releases import check_pretrained_source, release_cfgs

__all__ = ['GCPShuffleNetV2', 'InvertedResidual', 'channel_shuffle', 'checkpoint_filter_fn']


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of `groups` groups: (g, C/g) -> (C/g, g), ShuffleNet's channel shuffle."""
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


def _conv_bn(
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        dd: Optional[Dict[str, Any]] = None,
) -> List[nn.Module]:
    dd = dd or {}
    return [
        nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=False, **dd),
        nn.BatchNorm2d(out_chs, **dd),
    ]


class InvertedResidual(nn.Module):
    """ShuffleNetV2 unit: stride 1 splits the channels and transforms one half; stride 2 transforms both copies.

    branch2 = 1x1 conv-BN-ReLU, 3x3 depthwise conv-BN (stride), 1x1 conv-BN-ReLU; branch1 (stride 2
    only) = 3x3 depthwise conv-BN (stride), 1x1 conv-BN-ReLU. The halves are concatenated and shuffled.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, device=None, dtype=None) -> None:
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if stride not in (1, 2):
            raise ValueError(f'ShuffleNetV2 units have stride 1 or 2, got {stride}')
        branch_chs = out_chs // 2
        if stride == 1 and in_chs != 2 * branch_chs:
            raise ValueError(f'a stride-1 unit keeps its width: in_chs {in_chs} != out_chs {out_chs}')
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                *_conv_bn(in_chs, in_chs, 3, stride, groups=in_chs, dd=dd),
                *_conv_bn(in_chs, branch_chs, dd=dd), nn.ReLU(inplace=True))
        else:
            self.branch1 = nn.Identity()
        self.branch2 = nn.Sequential(
            *_conv_bn(in_chs if stride > 1 else branch_chs, branch_chs, dd=dd), nn.ReLU(inplace=True),
            *_conv_bn(branch_chs, branch_chs, 3, stride, groups=branch_chs, dd=dd),
            *_conv_bn(branch_chs, branch_chs, dd=dd), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class GCPShuffleNetV2(GCPClassifierMixin, nn.Module):
    """ShuffleNetV2 trunk (torchvision's module names) with a global covariance pooling head."""

    def __init__(
            self,
            stages_repeats: Tuple[int, ...] = (4, 8, 4),
            stages_out_channels: Tuple[int, ...] = (24, 116, 232, 464, 1024),
            num_classes: int = 1000,
            in_chans: int = 3,
            global_pool: str = 'gcp',
            drop_rate: float = 0.0,
            device=None,
            dtype=None,
            **kwargs: Any,
    ) -> None:
        """
        Args:
            stages_repeats: Units in stage2-stage4 (x1.0: 4, 8, 4).
            stages_out_channels: Widths of conv1, stage2-stage4 and conv5 (x1.0: 24, 116, 232, 464, 1024).
            num_classes: Classifier outputs; 0 returns the pooled covariance vector.
            global_pool: 'gcp', or '' for unpooled features (with num_classes=0).
            drop_rate: Dropout on the covariance vector before the classifier (the authors': none).
            **kwargs: `gcp_X` sets the head's `GCPPool` argument X, as the GCP ResNets take them; the
                authors' head is gcp_dim=256, gcp_act='relu6'.
        """
        super().__init__()
        check_pool_type(global_pool, num_classes, 'global_pool')
        gcp_args = dict(dict(dim=256, act='relu6'), **pop_gcp_args(kwargs))
        if kwargs:
            raise TypeError(f"GCPShuffleNetV2 got unexpected arguments {', '.join(kwargs)}")
        if len(stages_repeats) != 3 or len(stages_out_channels) != 5:
            raise ValueError(f'ShuffleNetV2 needs 3 stage repeats and 5 widths, got {stages_repeats} and '
                             f'{stages_out_channels}')
        dd = {'device': device, 'dtype': dtype}
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        stem_chs = stages_out_channels[0]
        self.conv1 = nn.Sequential(*_conv_bn(in_chans, stem_chs, 3, 2, dd=dd), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.feature_info = [dict(num_chs=stem_chs, reduction=2, module='conv1')]
        prev_chs, reduction = stem_chs, 4
        for i, (repeats, out_chs) in enumerate(zip(stages_repeats, stages_out_channels[1:-1])):
            units = [InvertedResidual(prev_chs, out_chs, 2, **dd)]
            units += [InvertedResidual(out_chs, out_chs, 1, **dd) for _ in range(repeats - 1)]
            setattr(self, f'stage{i + 2}', nn.Sequential(*units))
            prev_chs, reduction = out_chs, reduction * 2
            self.feature_info.append(dict(num_chs=out_chs, reduction=reduction, module=f'stage{i + 2}'))
        self.num_features = stages_out_channels[-1]
        self.conv5 = nn.Sequential(*_conv_bn(prev_chs, self.num_features, dd=dd), nn.ReLU(inplace=True))
        self.feature_info.append(dict(num_chs=self.num_features, reduction=reduction, module='conv5'))

        self.head = GCPHead(
            self.num_features,
            num_classes=num_classes,
            pool_type=global_pool,
            drop_rate=drop_rate,
            min_input=min_input_side(reduction),
            **gcp_args,
            **dd,
        )
        self.head_hidden_size = self.head.num_features
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    def _stages(self) -> List[nn.Module]:
        """The modules after each tap of `feature_info`, in order: conv1, stage2-stage4, conv5."""
        return [self.conv1, self.stage2, self.stage3, self.stage4, self.conv5]

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(
            stem=r'^conv1',
            blocks=[(r'^stage(\d+)' if coarse else r'^stage(\d+)\.(\d+)', None), (r'^conv5', (99999,))],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The outputs of conv1, stage2-stage4 and conv5 (indices into `feature_info`), and the final features."""
        if output_fmt != 'NCHW':
            raise ValueError(f"ShuffleNetV2 features are NCHW, got output_fmt={output_fmt!r}")
        stages = self._stages()
        take_indices, max_index = feature_take_indices(len(stages), indices)
        intermediates = []
        last = max_index if stop_early else len(stages) - 1
        for i, stage in enumerate(stages[:last + 1]):
            if i == 1:
                x = self.maxpool(x)
            x = stage(x)
            if i in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """Remove the stages after the `indices` taps (and the head, with `prune_head`)."""
        stages = self._stages()
        take_indices, max_index = feature_take_indices(len(stages), indices)
        names = ['conv1', 'stage2', 'stage3', 'stage4', 'conv5']
        for name in names[max_index + 1:]:
            setattr(self, name, nn.Identity())
        if max_index == 0:
            self.maxpool = nn.Identity()
        self.num_features = self.feature_info[max_index]['num_chs']
        if prune_head:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint(self.stage4, checkpoint(self.stage3, checkpoint(self.stage2, x)))
        else:
            x = self.stage4(self.stage3(self.stage2(x)))
        return self.conv5(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: GCPShuffleNetV2) -> Dict[str, torch.Tensor]:
    """GCP_Optimization's ShuffleNetV2 checkpoint (or timm-gcp's own) onto this model's keys, shapes checked.

    The authors' trunk keys are this model's; `dimension_reduction` and `fc` become the head
    (`SHUFFLENETV2_RENAMES`), with or without 'state_dict' and DataParallel's `module.`.
    """
    state_dict = state_dict.get('state_dict', state_dict)
    out = {rename_key(k, SHUFFLENETV2_RENAMES): v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    adaptable = {'conv1.0.weight', 'head.fc.weight', 'head.fc.bias'}
    check_fit(out, model.state_dict(), type(model).__name__, adaptable=adaptable)
    return out


def _create_gcp_shufflenet(variant: str, pretrained: bool = False, **kwargs: Any) -> GCPShuffleNetV2:
    check_pretrained_arg(variant, pretrained)
    if pretrained:
        check_pretrained_source(variant, kwargs)
    return build_model_with_cfg(
        GCPShuffleNetV2,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls='getter'),
        **kwargs,
    )


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    """The authors' weights: torchvision's ImageNet preprocessing, bilinear."""
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bilinear', 'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'conv1.0', 'classifier': 'head.fc',
        **kwargs,
    }


default_cfgs = generate_default_cfgs(release_cfgs(_cfg, 'shufflenetv2_100_isqrt_d256'))


@register_model
def shufflenetv2_100_isqrt_d256(pretrained: bool = False, **kwargs: Any) -> GCPShuffleNetV2:
    """ShuffleNetV2 x1.0 with GCP_Optimization's iSQRT-COV head (256-d reduction with ReLU6)."""
    return _create_gcp_shufflenet('shufflenetv2_100_isqrt_d256', pretrained, **kwargs)
