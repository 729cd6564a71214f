"""Benchmarks: `timm-gcp bench` (models against their timm twins) and `timm-gcp bench-layers` (the layers)."""
from .measure import count_flops, saved_tensor_bytes

__all__ = ['count_flops', 'saved_tensor_bytes']
