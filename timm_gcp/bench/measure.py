"""What the benchmarks and the model cards measure: FLOPs of a call, and the memory autograd saves."""
from typing import Any, Callable, Dict, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ['count_flops', 'saved_tensor_bytes', 'saved_tensors']


def count_flops(fn: Callable[..., Any], *args: Any) -> int:
    """FLOPs (2 per multiply-add) of the matrix products and convolutions `fn(*args)` runs."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn(*args)
    return counter.get_total_flops()


def saved_tensors(fn: Callable[[], Any]) -> Dict[int, torch.Tensor]:
    """The tensors autograd saves for backward while `fn()` runs, one per storage (keyed by its address)."""
    saved: Dict[int, torch.Tensor] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.setdefault(t.untyped_storage().data_ptr(), t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return saved


def saved_tensor_bytes(fn: Callable[[], Any], exclude: Sequence[torch.Tensor] = ()) -> int:
    """Bytes of the distinct storages autograd saves for backward while `fn()` runs.

    Storages of `exclude` (e.g. the parameters) are not counted; views of one storage count once.
    """
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    return sum(t.untyped_storage().nbytes() for ptr, t in saved_tensors(fn).items() if ptr not in excluded)
