"""Key layouts of the authors' checkpoints, as rename tables onto timm-gcp's keys (docs/checkpoints.md).

One table per source; the model families' `checkpoint_filter_fn` and `timm-gcp convert` both use them:

* `RESNET_RENAMES`: the PyTorch GCP ResNets. fast-MPN-COV's released weights and the CVPR'20 /
  DropCov training checkpoints (after DataParallel's `module.`) keep torchvision's trunk names and
  name the head `layer_reduce`, `layer_reduce_bn`, `eca_layer` and `fc`; fast-MPN-COV's own training
  checkpoints hold the trunk as `features.module.<i>` and the head as `representation` / `classifier`.
* `MINDSPORE_RENAMES`: the TPAMI'23 MindSpore ResNets, onto the PyTorch originals' names (which
  `RESNET_RENAMES` then maps): BatchNorm `gamma` / `beta` / `moving_*`, ResNet-18/34's `bn1d`, the
  shortcut's `down_sample_layer`. `MINDSPORE_TRAINING_STATE` matches the optimizer and loop entries
  that a MindSpore training checkpoint stores beside the weights.
* `VIT_RENAMES`: the SoT / DropCov-ViT checkpoints (`visual_tokens.tokens` tokenizer, `classifier` head).
  Their authors' training script keeps a model EMA and evaluates it: `is_vit_authors_layout` tells
  their state dicts from timm-gcp's own (a `train.py` run of a timm-gcp ViT).
* `MOBILENETV2_RENAMES`: GCP_Optimization's MobileNetV2 (torchvision's `features.N` trunk,
  `dimension_reduction`, `classifier.1`) onto timm's `mobilenetv2_100` under `backbone.`.
* `SHUFFLENETV2_RENAMES`: GCP_Optimization's ShuffleNetV2 (torchvision's trunk names, kept as they
  are; `dimension_reduction` and `fc` become the GCP head).
"""
import re
from typing import Callable, Iterable, Pattern, Sequence, Tuple, Union

__all__ = [
    'MINDSPORE_PREFIX', 'MINDSPORE_RENAMES', 'MINDSPORE_TRAINING_STATE', 'MOBILENETV2_RENAMES', 'RESNET_RENAMES',
    'SHUFFLENETV2_RENAMES', 'VIT_RENAMES', 'is_vit_authors_layout', 'mindspore_key', 'rename_key',
]

# the architectures with the MindSpore numerics are the PyTorch ones with this prefix (as timm's `tf_`)
MINDSPORE_PREFIX = 'ms_'

Rename = Tuple[Pattern, Union[str, Callable[[re.Match], str]]]

_REDUCE_CONV = 'head.global_pool.reduce.conv.'
_REDUCE_BN = 'head.global_pool.reduce.bn.'


def _table(*pairs: Tuple[str, Union[str, Callable[[re.Match], str]]]) -> Tuple[Rename, ...]:
    return tuple((re.compile(pattern), repl) for pattern, repl in pairs)


RESNET_RENAMES = _table(
    (r'^layer_reduce\.', _REDUCE_CONV),
    (r'^layer_reduce_bn\.', _REDUCE_BN),
    (r'^eca_layer\.conv\.', 'head.global_pool.dropcov.conv.'),
    (r'^fc\.', 'head.fc.'),
    # fast-MPN-COV training checkpoints: the torchvision trunk as a Sequential, then the head
    (r'^features\.module\.0\.', 'conv1.'),
    (r'^features\.module\.1\.', 'bn1.'),
    (r'^features\.module\.([4-7])\.', lambda m: f'layer{int(m.group(1)) - 3}.'),
    (r'^features\.module\.8\.', _REDUCE_CONV),
    (r'^features\.module\.9\.', _REDUCE_BN),
    (r'^representation\.conv_dr_block\.0\.', _REDUCE_CONV),
    (r'^representation\.conv_dr_block\.1\.', _REDUCE_BN),
    (r'^classifier\.', 'head.fc.'),
)

MINDSPORE_RENAMES = _table(
    (r'\.gamma$', '.weight'),
    (r'\.beta$', '.bias'),
    (r'\.moving_mean$', '.running_mean'),
    (r'\.moving_variance$', '.running_var'),
    (r'\.bn(\d)d\.', r'.bn\1.'),
    (r'\.down_sample_layer\.', '.downsample.'),
)

MINDSPORE_TRAINING_STATE = re.compile(
    r'^(moments|accum|accu_grads|adam_m|adam_v|mean_grad|mean_square|global_step|learning_rate|momentum|'
    r'epoch_num|step_num|scale_sense|current_iterator_step|last_overflow_iterator_step|beta1_power|beta2_power)'
    r'(\.|$)')

VIT_RENAMES = _table(
    (r'^visual_tokens\.tokens\.', 'patch_embed.'),
    (r'^classifier\.', 'head.'),
)
_VIT_AUTHORS_TOKENIZER = re.compile(r'^(module\.)?visual_tokens\.tokens\.')


# torchvision MobileNetV2 `features.i` (i = 1..17) -> timm `blocks.<stage>.<index>`,
# stages of 1, 2, 3, 4, 3, 3, 1 blocks
_MBV2_BLOCKS = [(stage, index) for stage, depth in enumerate((1, 2, 3, 4, 3, 3, 1)) for index in range(depth)]
# torchvision's module path in a block -> timm's: the first block has no expansion conv
_MBV2_DS = {'0.0': 'conv_dw', '0.1': 'bn1', '1': 'conv_pw', '2': 'bn2'}
_MBV2_IR = {'0.0': 'conv_pw', '0.1': 'bn1', '1.0': 'conv_dw', '1.1': 'bn2', '2': 'conv_pwl', '3': 'bn3'}


def _mbv2_block(m: re.Match) -> str:
    i, part = int(m.group(1)), m.group(2)
    stage, index = _MBV2_BLOCKS[i - 1]
    return f'backbone.blocks.{stage}.{index}.{(_MBV2_DS if i == 1 else _MBV2_IR)[part]}.'


MOBILENETV2_RENAMES = _table(
    (r'^features\.0\.0\.', 'backbone.conv_stem.'),
    (r'^features\.0\.1\.', 'backbone.bn1.'),
    (r'^features\.18\.0\.', 'backbone.conv_head.'),
    (r'^features\.18\.1\.', 'backbone.bn2.'),
    (r'^features\.(1)\.conv\.(0\.0|0\.1|1|2)\.', _mbv2_block),
    (r'^features\.(\d+)\.conv\.(0\.0|0\.1|1\.0|1\.1|2|3)\.', _mbv2_block),
    (r'^dimension_reduction\.0\.', _REDUCE_CONV),
    (r'^dimension_reduction\.1\.', _REDUCE_BN),
    (r'^classifier\.1\.', 'head.fc.'),
)

SHUFFLENETV2_RENAMES = _table(
    (r'^dimension_reduction\.0\.', _REDUCE_CONV),
    (r'^dimension_reduction\.1\.', _REDUCE_BN),
    (r'^fc\.', 'head.fc.'),
)


def rename_key(key: str, renames: Sequence[Rename]) -> str:
    """`key` without DataParallel's `module.` prefix, renamed by the first rule of `renames` that matches."""
    key = re.sub(r'^module\.', '', key)
    for pattern, repl in renames:
        new_key, n = pattern.subn(repl, key)
        if n:
            return new_key
    return key


def is_vit_authors_layout(keys: Iterable[str]) -> bool:
    """Whether state dict keys are the SoT / DropCov-ViT authors' (their `visual_tokens.tokens` tokenizer)."""
    return any(_VIT_AUTHORS_TOKENIZER.match(key) for key in keys)


def mindspore_key(name: str) -> str:
    """A MindSpore parameter name as the PyTorch original names it (every rule of `MINDSPORE_RENAMES` applies)."""
    for pattern, repl in MINDSPORE_RENAMES:
        name = pattern.sub(repl, name)
    return name
