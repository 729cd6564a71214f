"""Common corruptions at five severities, built from torch / torchvision, and the mean corruption error.

After Hendrycks & Dietterich (ICLR 2019, ImageNet-C): noise (Gaussian, shot, impulse, speckle),
Gaussian blur, contrast, brightness (on the HSV value, as ImageNet-C), pixelation and JPEG (Pillow's
codec). The severities follow ImageNet-C's; the blur radii are scaled to small images (corruptions act at the data's own
resolution, 28 px for Fashion-MNIST). Each corruption maps images in [0, 1] (N x C x H x W) to images in [0, 1],
quantized to 8 bits as ImageNet-C's files are; random ones draw from a generator seeded per
corruption and severity, so a run repeats.

The corruption error of a model on corruption c is its test error summed over the severities,
divided by the same sum of the reference model (the average-pooling twin); the mean corruption error
(mCE) averages it over the corruptions: below 100 % the model is more robust than its twin.
See docs/analysis.md, "Corruptions".
"""
import io
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['CORRUPTIONS', 'SEVERITIES', 'check_corruptions', 'corruption', 'corruption_errors',
           'mean_corruption_error']

SEVERITIES = (1, 2, 3, 4, 5)
_Fn = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]


def _gaussian_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    return x + c * torch.randn(x.shape, generator=g)


def _shot_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    return torch.poisson(x * c, generator=g) / c


def _impulse_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    u = torch.rand(x.shape, generator=g)
    salt = torch.rand(x.shape, generator=g) < 0.5
    return torch.where(u < c, salt.to(x.dtype), x)


def _speckle_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    return x + x * c * torch.randn(x.shape, generator=g)


def _gaussian_blur(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    from torchvision.transforms.v2.functional import gaussian_blur

    radius = max(1, int(3 * c + 0.5))
    return gaussian_blur(x, kernel_size=[2 * radius + 1] * 2, sigma=[c, c])


def _contrast(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * c + mean


def _brightness(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    """ImageNet-C's: c added to the HSV value V = max over channels, clipped, hue and saturation kept.

    With hue and saturation fixed, every channel is proportional to V, so the pixel scales by V' / V
    (a black pixel, saturation 0, becomes grey V'); on a 1-channel image this is x + c, clipped.
    """
    value = x.amax(dim=1, keepdim=True)
    shifted = (value + c).clamp(0, 1)
    return torch.where(value > 0, x * shifted / value.clamp_min(1e-12), shifted)


def _pixelate(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    size = x.shape[-2:]
    small = [max(1, int(s * c)) for s in size]
    return F.interpolate(F.interpolate(x, size=small, mode='area'), size=size, mode='nearest')


def _jpeg(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    from PIL import Image  # torchvision's own dependency; its JPEG codec in torchvision.io is deprecated

    out = []
    for image in x.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy():
        buffer = io.BytesIO()
        Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buffer, 'JPEG', quality=int(c))
        decoded = torch.from_numpy(np.asarray(Image.open(buffer)).copy())
        out.append(decoded.reshape(image.shape))
    return torch.stack(out).permute(0, 3, 1, 2).float().div(255)


# name: (function, parameter at severities 1-5)
CORRUPTIONS: Dict[str, tuple] = {
    'gaussian_noise': (_gaussian_noise, (0.08, 0.12, 0.18, 0.26, 0.38)),
    'shot_noise': (_shot_noise, (60, 25, 12, 5, 3)),
    'impulse_noise': (_impulse_noise, (0.03, 0.06, 0.09, 0.17, 0.27)),
    'speckle_noise': (_speckle_noise, (0.15, 0.2, 0.35, 0.45, 0.6)),
    'gaussian_blur': (_gaussian_blur, (0.5, 0.75, 1.0, 1.25, 1.5)),
    'contrast': (_contrast, (0.4, 0.3, 0.2, 0.1, 0.05)),
    'brightness': (_brightness, (0.1, 0.2, 0.3, 0.4, 0.5)),
    'pixelate': (_pixelate, (0.6, 0.5, 0.4, 0.3, 0.25)),
    'jpeg': (_jpeg, (25, 18, 15, 10, 7)),
}


def check_corruptions(names: Sequence[str]) -> List[str]:
    """`names` if all are known corruptions; ValueError naming the first unknown one and the valid ones."""
    for name in names:
        if name not in CORRUPTIONS:
            raise ValueError(f"unknown corruption '{name}'; valid: {', '.join(CORRUPTIONS)}")
    return list(names)


def corruption(name: str, severity: int, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Corruption `name` at `severity` (1-5) as a function of images in [0, 1], clipped and quantized to 8 bits.

    Random corruptions draw from one generator per call of this function, seeded by `seed`, `name`
    and `severity`: successive batches get fresh noise and a second run the same.
    """
    check_corruptions([name])
    if severity not in SEVERITIES:
        raise ValueError(f'severity must be one of {SEVERITIES}, got {severity}')
    fn, params = CORRUPTIONS[name]
    generator = torch.Generator().manual_seed(seed * 1000 + list(CORRUPTIONS).index(name) * 10 + severity)

    def apply(x: torch.Tensor) -> torch.Tensor:
        return fn(x, params[severity - 1], generator).clamp(0, 1).mul(255).round().div(255)

    return apply


def corruption_errors(errors: Dict[str, Sequence[float]], reference: Dict[str, Sequence[float]]) -> Dict[str, float]:
    """Corruption error (%) per corruption: summed error over severities relative to the reference's."""
    return {name: 100 * sum(errors[name]) / max(sum(reference[name]), 1e-12) for name in errors}


def mean_corruption_error(errors: Dict[str, Sequence[float]], reference: Dict[str, Sequence[float]]) -> float:
    """mCE (%): the corruption errors averaged over the corruptions (100 % is the reference's)."""
    ce = corruption_errors(errors, reference)
    return sum(ce.values()) / len(ce)

