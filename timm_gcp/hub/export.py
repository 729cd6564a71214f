"""Hugging Face Hub export and upload: timm's `save_for_hf` plus a model card, written atomically.

timm's `push_to_hf_hub` writes a README only when the repo has none and generates it from a dict;
timm-gcp publishes its own cards (`timm_gcp.hub.cards`), so the export is `save_for_hf` (model.safetensors
and config.json with the registered architecture and the model args) plus README.md, and the
upload is the same `HfApi.create_repo` + `upload_folder` that `push_to_hf_hub` performs.
"""
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Union

import timm
from huggingface_hub import HfApi
from timm.models import save_for_hf
from torch import nn

__all__ = ['HUB_FILES', 'write_dir_atomic', 'write_text_atomic', 'export_for_hub', 'upload_folder']

HUB_FILES = ('config.json', 'model.safetensors', 'README.md')


def write_dir_atomic(out_dir: Union[str, Path], write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Fill a temporary sibling of `out_dir` with `write(tmp)`, then rename it into place.

    A failure leaves neither a half-written `out_dir` nor the temporary folder; an existing
    `out_dir` is an error unless `overwrite`, and is only replaced once the new one is complete.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f'{out_dir}: already exists')
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', suffix='.partial', dir=out_dir.parent))
    try:
        write(tmp)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', suffix='.old', dir=out_dir.parent))
            os.rename(out_dir, old / out_dir.name)
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def write_text_atomic(path: Union[str, Path], text: str) -> None:
    """Write `text` to `path` through a temporary sibling renamed over it: the old file or the new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.partial', dir=path.parent)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0o600 would make a card or README private
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def export_for_hub(
        model: nn.Module,
        out_dir: Union[str, Path],
        card: Optional[str] = None,
        overwrite: bool = False,
) -> Path:
    """Write the Hub folder of `model`: model.safetensors, config.json and, given a card, README.md."""
    def write(tmp: Path) -> None:
        save_for_hf(model, tmp, safe_serialization=True)
        if card is not None:
            (tmp / 'README.md').write_text(card, encoding='utf-8')

    return write_dir_atomic(out_dir, write, overwrite=overwrite)


def upload_folder(
        folder: Union[str, Path],
        repo_id: str,
        token: Optional[str] = None,
        private: bool = False,
        revision: Optional[str] = None,
        commit_message: str = 'Add model',
) -> Any:
    """Create the Hub repo if needed and upload `folder` to it (the steps of timm's push_to_hf_hub)."""
    api = HfApi(token=token, library_name='timm', library_version=timm.__version__)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_url.repo_id,
        folder_path=str(folder),
        revision=revision,
        commit_message=commit_message,
    )
