"""DistributedDataParallel on the CPU (gloo) for timm's train.py: DDP without device ids, SyncBatchNorm in Python.

timm's train.py wraps the model with `DistributedDataParallel(model, device_ids=[device])`, which DDP
refuses for a CPU module, and `--sync-bn` makes every BatchNorm a `torch.nn.SyncBatchNorm`, whose
statistics kernels exist for GPUs only and which DDP refuses in a CPU module. `ddp_device_ids` gives
DDP the device ids it takes on each device, and `sync_batchnorm_on_cpu` makes the BatchNorm layers of
a CPU model compute the statistics of the global batch with autograd-aware all-reduces (gloo), the
same numbers torch's kernels compute on GPUs. See docs/training.md, "Distributed training on the CPU".
"""
import functools
from typing import Optional, Sequence, Type

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn

__all__ = ['CpuSyncBatchNorm', 'ddp_device_ids', 'sync_batchnorm_on_cpu']


def ddp_device_ids(device_ids: Optional[Sequence]) -> Optional[list]:
    """`device_ids` for DistributedDataParallel: None for CPU devices (DDP refuses any other value for a CPU
    module), the ids unchanged otherwise."""
    if device_ids and all(torch.device(d).type == 'cpu' for d in device_ids):
        return None
    return None if device_ids is None else list(device_ids)


class CpuSyncBatchNorm(nn.Module):
    """Mixed into a BatchNorm class: in training, under an initialized process group, the mean and variance of the
    batch across every process (gloo all-reduces, with gradients through them), as torch's SyncBatchNorm computes
    them on GPUs; otherwise the class's own forward. timm's BatchNormAct2d keeps its drop and activation after."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / x.size(1)], dtype=x.dtype)
        dist.all_reduce(count)
        mean = dist_fn.all_reduce(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = dist_fn.all_reduce((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean, factor)
                self.running_var.lerp_(var * count / (count - 1).clamp(min=1), factor)  # unbiased, as torch keeps it
        out = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        for name in ('drop', 'act'):  # timm's BatchNormAct2d, as its SyncBatchNormAct
            if hasattr(self, name):
                out = getattr(self, name)(out)
        return out


_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@functools.lru_cache(maxsize=None)
def _synced(cls: Type[nn.Module]) -> Type[nn.Module]:
    """`cls` with CpuSyncBatchNorm's forward in front of its own."""
    return type(f'CpuSync{cls.__name__}', (CpuSyncBatchNorm, cls), {})


def sync_batchnorm_on_cpu(model: nn.Module) -> nn.Module:
    """`--sync-bn` for a CPU model: every BatchNorm of `model` given CpuSyncBatchNorm's forward, in place (not
    torch's SyncBatchNorm, which DDP refuses in a CPU module); parameters, buffers and state dict keys unchanged.
    Returns `model`."""
    for module in model.modules():
        if isinstance(module, _BATCHNORMS) and not isinstance(module, (CpuSyncBatchNorm, nn.SyncBatchNorm)):
            module.__class__ = _synced(type(module))
    return model
