"""Benchmarks: `timm-gcp bench` (models against their timm twins) and `timm-gcp bench-layers` (the layers).

The measuring utilities (FLOPs, saved and peak tensor bytes) are `timm_gcp.measure`.
"""
