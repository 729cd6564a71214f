"""State dicts in the layouts of the authors' PyTorch checkpoints, built from a timm_gcp model's.

Shared by the loading tests (pretrained cfg with a file) and the conversion tests (`timm-gcp convert`).
"""
from typing import Any, Dict

import torch
from torch import nn

StateDict = Dict[str, torch.Tensor]

_HEAD_RENAMES = (('head.reduce.conv.', 'layer_reduce.'), ('head.reduce.bn.', 'layer_reduce_bn.'),
                 ('head.dropcov.conv.', 'eca_layer.conv.'), ('head.fc.', 'fc.'))
_TRAINING_HEAD_RENAMES = (('head.reduce.conv.', 'representation.conv_dr_block.0.'),
                          ('head.reduce.bn.', 'representation.conv_dr_block.1.'), ('head.fc.', 'classifier.'))
_TRAINING_TRUNK_INDEX = {'conv1.': '0.', 'bn1.': '1.', 'layer1.': '4.', 'layer2.': '5.', 'layer3.': '6.',
                         'layer4.': '7.'}


def _rename(key: str, renames) -> str:
    for old, new in renames:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def fmpn_plain(sd: StateDict) -> StateDict:
    """fast-MPN-COV's released weights: torchvision trunk names, `layer_reduce(_bn)`, `fc` (and DropCov's `eca_layer`)."""
    return {_rename(k, _HEAD_RENAMES): v for k, v in sd.items()}


def fmpn_training(sd: StateDict) -> Dict[str, Any]:
    """A fast-MPN-COV training checkpoint: `features.module.<index>` trunk, `representation`, `classifier`."""
    out = {}
    for k, v in sd.items():
        if k.startswith('head.'):
            k = _rename(k, _TRAINING_HEAD_RENAMES)
        else:
            prefix = next(p for p in _TRAINING_TRUNK_INDEX if k.startswith(p))
            k = 'features.module.' + _TRAINING_TRUNK_INDEX[prefix] + k[len(prefix):]
        out[k] = v
    return {'epoch': 65, 'arch': 'mpncovresnet50', 'state_dict': out, 'best_prec1': 78.3, 'optimizer': {'state': {}}}


def module_prefixed(sd: StateDict) -> Dict[str, Any]:
    """A CVPR'20 / DropCov training checkpoint: the plain layout under DataParallel's `module.`."""
    return {'epoch': 100, 'arch': 'resnet50_ACD', 'state_dict': {'module.' + k: v for k, v in fmpn_plain(sd).items()},
            'best_acc1': torch.tensor(78.0), 'optimizer': {'state': {}, 'param_groups': []}}


def vit_original(sd: StateDict) -> StateDict:
    """The SoT / DropCov-ViT layout: `visual_tokens.tokens` tokenizer, `classifier` head (tensors cloned)."""
    renames = (('patch_embed.', 'visual_tokens.tokens.'), ('head.', 'classifier.'))
    return {_rename(k, renames): v.clone() for k, v in sd.items()}


def randomize_bn(model: nn.Module) -> nn.Module:
    """Give every BatchNorm statistics and affine parameters away from their initial values; eval mode."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return model.eval()
