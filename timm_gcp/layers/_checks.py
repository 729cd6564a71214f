"""Argument checks and the float32 guard shared by the GCP layers."""
from contextlib import nullcontext
from typing import ContextManager

import torch


def check_int(value: int, name: str, minimum: int) -> None:
    """Raise a TypeError unless `value` is an int (not a bool), a ValueError if it is below `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f'{name} must be an int, got {type(value).__name__}')
    if value < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {value}')


def check_rate(value: float, name: str) -> None:
    """Raise a ValueError unless `value` is a number in [0, 1) (a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f'{name} must be a rate in [0, 1), got {value!r}')


def check_float(x: torch.Tensor, name: str) -> None:
    """Raise a TypeError unless `x` is a floating point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'{name} must be a torch.Tensor, got {type(x).__name__}')
    if not x.is_floating_point():
        raise TypeError(f'{name} must be a floating point tensor, got dtype {x.dtype}')


def check_rank(x: torch.Tensor, ndim: int, name: str, layout: str) -> None:
    """Raise a ValueError unless `x` has `ndim` dimensions (described by `layout`, e.g. 'B x C x H x W')."""
    if x.ndim != ndim:
        raise ValueError(f'{name} must be {ndim}-D ({layout}), got shape {tuple(x.shape)}')


def check_square(m: torch.Tensor, name: str) -> None:
    """Raise unless `m` is a float batch of square matrices B x C x C."""
    check_float(m, name)
    check_rank(m, 3, name, 'B x C x C')
    if m.shape[-1] != m.shape[-2]:
        raise ValueError(f'{name} must hold square matrices (B x C x C), got shape {tuple(m.shape)}')


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype GCP math runs in: float64 stays float64, everything else is promoted to float32.

    fp16 covariances overflow and bf16 Newton-Schulz loses about 1 % accuracy, so half types are
    never used for the matrix work.
    """
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def no_autocast(x: torch.Tensor) -> ContextManager:
    """A context that turns autocast off on `x`'s device, so the matrix work stays in float32."""
    device_type = x.device.type
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return nullcontext()
