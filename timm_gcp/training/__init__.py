"""Two models trained side by side on the same batches: the loop `timm-gcp demo` and `timm-gcp analyze` share.

`loop` (pair creation, training, evaluation, the per-epoch table), `data` (Fashion-MNIST in memory
or any timm dataset) and `fashion_mnist` (the data set's idx files).
"""
from .loop import OptimConfig, Trainer, create_pair, evaluate, train_pair

__all__ = ['OptimConfig', 'Trainer', 'create_pair', 'evaluate', 'train_pair']
