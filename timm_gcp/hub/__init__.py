"""Hugging Face Hub: export and upload (`export`), model cards (`cards`, `timm-gcp cards`), `timm-gcp publish`."""
from .export import HUB_FILES, export_for_hub, upload_folder, write_dir_atomic

__all__ = ['HUB_FILES', 'export_for_hub', 'upload_folder', 'write_dir_atomic']
