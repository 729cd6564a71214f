"""A model out of the process: its Hub / `local-dir:` folder (`folder`) and ONNX checked with onnxruntime (`onnx`).

`torch.export` and TorchScript need nothing from here: every timm-gcp model exports with them as it is.
"""
from .folder import HUB_FILES, PROVENANCE_FILE, export_for_hub, own_weights, write_dir_atomic
from .onnx import OnnxExportError, OnnxReport, eigen_ops, export_onnx

__all__ = [
    'HUB_FILES', 'PROVENANCE_FILE', 'export_for_hub', 'own_weights', 'write_dir_atomic',
    'OnnxExportError', 'OnnxReport', 'eigen_ops', 'export_onnx',
]
