"""Two models trained side by side on the same batches: the loop `timm-gcp demo` and `timm-gcp analyze` share.

`loop` (pair creation, training, evaluation, the per-epoch table), `data` (Fashion-MNIST in memory
or any timm dataset) and `fashion_mnist` (the data set's idx files); and `finetune`, what fine-tuning
and probing add to timm (the head's learning rate, a frozen trunk, flip-averaged logits).
"""
from .loop import OptimConfig, Trainer, TrunkShare, create_pair, evaluate, train_pair, trunk_share

__all__ = ['OptimConfig', 'Trainer', 'TrunkShare', 'create_pair', 'evaluate', 'train_pair', 'trunk_share']
