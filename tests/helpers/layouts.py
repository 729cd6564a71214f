"""State dicts and files in the layouts of the authors' checkpoints, built from a timm_gcp model's state dict.

Written by hand from the layouts docs/checkpoints.md describes (not from the package's rename tables,
which they test). Shared by the loading tests (pretrained cfg with a file), the conversion tests
(`timm-gcp convert`) and the publishing tests.

* PyTorch ResNets: `fmpn_plain` (fast-MPN-COV's released weights), `fmpn_training` (its training
  checkpoints), `module_prefixed` (the CVPR'20 / DropCov training checkpoints);
* SoT / DropCov-ViT: `vit_original`;
* MindSpore ResNets (TPAMI'23): `mindspore_layout` names and shapes, `mindspore_message` /
  `write_mindspore_checkpoint` the protobuf `.ckpt` file MindSpore writes (without MindSpore).
"""
from pathlib import Path
from typing import Any, Dict, Iterable, Union

import torch

StateDict = Dict[str, torch.Tensor]

_HEAD_RENAMES = (('head.global_pool.reduce.conv.', 'layer_reduce.'),
                 ('head.global_pool.reduce.bn.', 'layer_reduce_bn.'),
                 ('head.global_pool.dropcov.conv.', 'eca_layer.conv.'),
                 ('head.fc.', 'fc.'))
_TRAINING_HEAD_RENAMES = (('head.global_pool.reduce.conv.', 'representation.conv_dr_block.0.'),
                          ('head.global_pool.reduce.bn.', 'representation.conv_dr_block.1.'),
                          ('head.fc.', 'classifier.'))
_TRAINING_TRUNK_INDEX = {'conv1.': '0.', 'bn1.': '1.', 'layer1.': '4.', 'layer2.': '5.', 'layer3.': '6.',
                         'layer4.': '7.'}


def _rename(key: str, renames) -> str:
    for old, new in renames:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def fmpn_plain(sd: StateDict) -> StateDict:
    """fast-MPN-COV's released weights: torchvision trunk names, `layer_reduce(_bn)`, `fc`, DropCov's `eca_layer`."""
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


# --- MindSpore ---------------------------------------------------------------------------------------------

_MS_BN = (('weight', 'gamma'), ('bias', 'beta'), ('running_mean', 'moving_mean'), ('running_var', 'moving_variance'))


def mindspore_layout(sd: StateDict, basic_block: bool) -> StateDict:
    """A timm-gcp GCP ResNet's weights as the TPAMI'23 MindSpore ResNets store them.

    The plain PyTorch names (`fmpn_plain`), then MindSpore's: BatchNorm `gamma` / `beta` /
    `moving_mean` / `moving_variance`, the shortcut as `down_sample_layer`, ResNet-18/34 block BNs
    as `bn1d` / `bn2d` (`basic_block`), DropCov's Conv1d kernel stored 4-D, a 1001-way fc (the last
    row, class 1000, random), no `num_batches_tracked`.
    """
    plain = fmpn_plain(sd)
    bn_modules = {k[:-len('running_mean')] for k in plain if k.endswith('running_mean')}
    out = {}
    for key, value in plain.items():
        if key.endswith('num_batches_tracked'):
            continue
        module, _, leaf = key.rpartition('.')
        if f'{module}.' in bn_modules:
            leaf = dict(_MS_BN)[leaf]
        if basic_block and module.startswith('layer') and module.rsplit('.', 1)[-1] in ('bn1', 'bn2'):
            module += 'd'
        module = module.replace('.downsample.', '.down_sample_layer.')
        if key == 'eca_layer.conv.weight':
            value = value.unsqueeze(2)
        elif key in ('fc.weight', 'fc.bias'):
            value = torch.cat([value, torch.randn_like(value[:1])])
        out[f'{module}.{leaf}'] = value.contiguous()
    return out


def _varint(n: int) -> bytes:
    out = b''
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def mindspore_message(tag: str, dims: Iterable[int], dtype: str, content: bytes) -> bytes:
    """One serialized `Checkpoint` holding one `Value`, as MindSpore writes per parameter (or slice of one)."""
    tensor = b''.join(_varint(1 << 3) + _varint(d) for d in dims) + _field(2, dtype.encode()) + _field(3, content)
    return _field(1, _field(1, tag.encode()) + _field(2, tensor))


_MS_DTYPES = {torch.float32: 'Float32', torch.float16: 'Float16', torch.int32: 'Int32', torch.int64: 'Int64'}


def write_mindspore_checkpoint(path: Union[str, Path], sd: StateDict) -> Path:
    """A `.ckpt` file of `sd` (names as given), one message per tensor, without the CRC trailer."""
    path = Path(path)
    with open(path, 'wb') as f:
        for name, value in sd.items():
            value = value.detach().contiguous()
            f.write(mindspore_message(name, value.shape, _MS_DTYPES[value.dtype], value.numpy().tobytes()))
    return path
