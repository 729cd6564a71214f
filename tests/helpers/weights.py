"""Random weights for models whose outputs are compared (a fresh model's BatchNorms are the identity)."""
import torch
from torch import nn

RANDOMIZE = ('bn', 'all')


def randomize(model: nn.Module, tensors: str = 'bn', seed: int = 0) -> nn.Module:
    """Draw `model`'s weights from a generator seeded with `seed`; returns the model in eval mode.

    tensors='bn': only the BatchNorm layers, statistics and affine parameters in bounded ranges
        (mean and bias in [-0.1, 0.1], variance and weight in [0.5, 1.5]), the rest as initialized:
        deep ResNets keep activations of order one.
    tensors='all': every floating point tensor of the state dict (BatchNorm statistics included),
        normal with std 0.2 for matrices and kernels, 0.5 for vectors; running variances uniform in
        [0.5, 1.5]. A fixed `pos_embed` table (the sinusoid buffer) is left alone.
    """
    if tensors not in RANDOMIZE:
        raise ValueError(f'tensors must be one of {RANDOMIZE}, got {tensors!r}')
    g = torch.Generator().manual_seed(seed)

    def uniform_(t: torch.Tensor, low: float, high: float) -> None:
        t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) * (high - low) + low)

    with torch.no_grad():
        if tensors == 'bn':
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and m.track_running_stats:
                    uniform_(m.running_mean, -0.1, 0.1)
                    uniform_(m.running_var, 0.5, 1.5)
                    uniform_(m.weight, 0.5, 1.5)
                    uniform_(m.bias, -0.1, 0.1)
        else:
            for name, t in model.state_dict().items():
                if not t.is_floating_point() or name == 'pos_embed':
                    continue
                if name.endswith('running_var'):
                    uniform_(t, 0.5, 1.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * (0.2 if t.ndim > 1 else 0.5))
    return model.eval()
