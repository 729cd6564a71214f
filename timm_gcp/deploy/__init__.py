"""Deployment: ONNX export checked with onnxruntime (`timm-gcp export-onnx`).

`torch.export` and TorchScript need nothing from here: every timm-gcp model exports with them as it is.
"""
from .onnx import OnnxExportError, OnnxReport, eigen_ops, export_onnx

__all__ = ['OnnxExportError', 'OnnxReport', 'eigen_ops', 'export_onnx']
