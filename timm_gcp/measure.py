"""What the benchmarks and the model cards measure: FLOPs of a call, the memory autograd saves, peak memory;
and the check the commands run before any work: a model built and run at an input size on the meta device.
"""
import weakref
from typing import Any, Callable, Dict, Optional, Sequence, Set, Tuple

import timm
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

__all__ = ['MetaBuildError', 'MetaInputError', 'build_on_meta', 'count_flops', 'device_problem', 'peak_tensor_bytes',
           'run_on_meta', 'saved_tensor_bytes', 'saved_tensors']

# what a model's constructor or forward raises for arguments or an input it cannot take
_MODEL_ERRORS = (TypeError, ValueError, RuntimeError, AssertionError)


class MetaBuildError(ValueError):
    """A model that cannot be built with its arguments; the message is the model's own error."""


class MetaInputError(ValueError):
    """A model that cannot take an input size; the message is the model's own error.

    `fixed_size` is the (height, width) a fixed-input-size model (a ViT's patch grid) is built for, else None.
    """

    def __init__(self, message: str, fixed_size: Optional[Tuple[int, int]] = None) -> None:
        super().__init__(message)
        self.fixed_size = fixed_size

    def hint(self, name: str, fix: str) -> str:
        """' (NAME is built for HxW inputs only: FIX)' for a fixed-input-size model, else ''."""
        if self.fixed_size is None:
            return ''
        return f" ({name} is built for {'x'.join(map(str, self.fixed_size))} inputs only: {fix})"


def device_problem(device: str) -> Optional[str]:
    """Why torch cannot run on `device` here ('cuda', 'cuda:1', 'mps' ...), with the fix; None if it can.

    RuntimeError (torch's) for a string that names no device.
    """
    parsed = torch.device(device)
    if parsed.type in ('cpu', 'meta'):
        return None
    backend = getattr(torch, parsed.type, None)  # torch.cuda, torch.mps, torch.xpu ...
    if backend is None or not backend.is_available():
        return f'{parsed.type.upper()} is not available here: pass --device cpu'
    if parsed.index is not None and parsed.index >= backend.device_count():
        return f'there are {backend.device_count()} {parsed.type.upper()} device(s) here, numbered from 0'
    return None


def build_on_meta(name: str, **kwargs: Any) -> torch.nn.Module:
    """`timm.create_model(name, **kwargs)` on the meta device (no weights, no work); MetaBuildError if it fails."""
    try:
        return timm.create_model(name, device='meta', **kwargs)
    except _MODEL_ERRORS as e:
        raise MetaBuildError(str(e)) from e


def run_on_meta(model: torch.nn.Module, input_size: Sequence[int], batch_size: int = 2) -> bool:
    """Run `model` once on a meta batch of `input_size` (channels, height, width); whether it could run there.

    False for a model the meta device cannot run whatever the input (an operation without a meta
    kernel, a `.item()`, a model built off the device): its input size is unchecked. MetaInputError
    with the model's own error where it refuses the input.
    """
    try:
        with torch.no_grad():
            model(torch.empty(batch_size, *input_size, device='meta'))
    except NotImplementedError:
        return False
    except _MODEL_ERRORS as e:
        if 'meta' in str(e):
            return False
        cfg = getattr(model, 'pretrained_cfg', None) or {}
        fixed = tuple(cfg['input_size'][1:]) if cfg.get('fixed_input_size') else None
        raise MetaInputError(str(e), fixed) from e
    return True


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


class _LiveStorages(TorchDispatchMode):
    """Bytes of the storages that ops create, alive at one time, and their peak.

    A storage counts from the op that returns it first until that tensor is freed; storages an op
    only reads (the inputs, the parameters) never count.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.sizes: Dict[int, int] = {}
        self.known: Set[int] = set()

    def _free(self, key: int) -> None:
        self.live -= self.sizes.pop(key)
        self.known.discard(key)  # the allocator may hand the same address to a new storage

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in tree_leaves((args, kwargs)):
            if isinstance(t, torch.Tensor):
                self.known.add(t.untyped_storage()._cdata)
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            key = t.untyped_storage()._cdata
            if key in self.known:
                continue
            self.known.add(key)
            self.sizes[key] = t.untyped_storage().nbytes()
            self.live += self.sizes[key]
            self.peak = max(self.peak, self.live)
            weakref.finalize(t, self._free, key)
        return out


def peak_tensor_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes of the tensors `fn()` allocates that are alive at one time (forward and backward alike).

    Counted per storage as the ops run, so it is the same on every device and in every run, and it
    leaves out what the allocator caches.
    """
    mode = _LiveStorages()
    # packing a saved tensor as itself makes autograd hold its Python object, so the tensor counts
    # until backward frees it, not until the forward code drops its last name for it
    with mode, torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        fn()
    return mode.peak
