"""The authors' checkpoints as data: key layouts onto timm-gcp's names, the MindSpore reader, the fit check.

No model code: the model families' checkpoint filters and `timm-gcp convert` both stand on it
(docs/architecture.md).
"""
from .fit import check_fit
from .layouts import (
    MINDSPORE_PREFIX, MINDSPORE_RENAMES, MINDSPORE_TRAINING_STATE, MOBILENETV2_RENAMES, RESNET_RENAMES,
    SHUFFLENETV2_RENAMES, VIT_RENAMES, mindspore_key, rename_key,
)
from .mindspore import MindSporeCheckpointError, is_mindspore_checkpoint, load_mindspore_checkpoint

__all__ = [
    'MINDSPORE_PREFIX', 'MINDSPORE_RENAMES', 'MINDSPORE_TRAINING_STATE', 'MOBILENETV2_RENAMES', 'RESNET_RENAMES',
    'SHUFFLENETV2_RENAMES', 'VIT_RENAMES', 'MindSporeCheckpointError', 'check_fit', 'is_mindspore_checkpoint',
    'load_mindspore_checkpoint', 'mindspore_key', 'rename_key',
]
