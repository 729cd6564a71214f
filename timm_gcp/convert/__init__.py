"""The authors' checkpoints in timm-gcp's layout: key layouts, the MindSpore reader, the converter.

`layouts` and `mindspore` need no model code, so the model families' checkpoint filters use them;
the converter (`timm-gcp convert`) is `timm_gcp.convert.converter`.
"""
from .layouts import MINDSPORE_RENAMES, MINDSPORE_TRAINING_STATE, RESNET_RENAMES, VIT_RENAMES, mindspore_key, rename_key
from .mindspore import MindSporeCheckpointError, is_mindspore_checkpoint, load_mindspore_checkpoint

__all__ = [
    'MINDSPORE_RENAMES', 'MINDSPORE_TRAINING_STATE', 'RESNET_RENAMES', 'VIT_RENAMES', 'MindSporeCheckpointError',
    'is_mindspore_checkpoint', 'load_mindspore_checkpoint', 'mindspore_key', 'rename_key',
]
