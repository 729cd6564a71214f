"""Hugging Face Hub publication: model cards (`cards`, `run_card`), accuracy on an image folder (`evaluate`),
`timm-gcp publish` with the upload (`publish`) and `timm-gcp release` (`release`)."""
