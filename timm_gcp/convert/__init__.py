"""`timm-gcp convert`: an authors' or a train.py checkpoint to a timm-gcp export folder (docs/checkpoints.md)."""
from .converter import ConversionError, ConversionReport, convert_checkpoint

__all__ = ['ConversionError', 'ConversionReport', 'convert_checkpoint']
