"""`timm-gcp publish`: upload a converted checkpoint to its Hub repo with its model card.

DIR is a `timm-gcp convert` output (model.safetensors + config.json). The repo name must be a
published `arch.tag` of the registry; the weights are loaded strictly as that registered model,
which must need no settings of its own (otherwise `create_model('arch.tag')` would compute
something else with them), and the card is rendered from the registry (`timm_gcp.hub.cards`, the
same text as the repository's `model_cards/<arch>.<tag>.md`). The export (config.json,
model.safetensors, README.md) is written whole or not at all; `--dry-run --out DIR` writes exactly
the folder that would be uploaded and uploads nothing.
"""
import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

import timm

from ..models.registry import published_names
from .cards import render_card
from .export import export_for_hub, upload_folder

__all__ = ['PublishError', 'PublishResult', 'publish', 'add_arguments', 'run']

# model args every export records; any other one is a setting that the registered arch.tag lacks
_EXPORT_ARGS = ('in_chans', 'num_classes', 'global_pool', 'img_size')


class PublishError(ValueError):
    """A folder or repo id that cannot be published; the message names it and the problem."""


@dataclass
class PublishResult:
    name: str
    repo_id: str
    folder: Path  # what was (or, in a dry run, would be) uploaded; gone after a real upload without --out
    uploaded: Any  # the Hub client's answer, None in a dry run


def _check_source(src: Path, name: str) -> Path:
    config_path, weights = src / 'config.json', src / 'model.safetensors'
    for path in (config_path, weights):
        if not path.is_file():
            raise PublishError(f'{src}: no {path.name} (expected a `timm-gcp convert` output folder)')
    try:
        config = json.loads(config_path.read_text(encoding='utf-8'))
    except json.JSONDecodeError as e:
        raise PublishError(f'{config_path}: not valid JSON ({e})') from None
    arch = name.split('.')[0]
    if config.get('architecture') != arch:
        raise PublishError(f'{config_path}: architecture {config.get("architecture")!r}, but the repo is for {arch}')
    cfg = timm.models.get_pretrained_cfg(name)
    args: Dict[str, Any] = config.get('model_args', {})
    expected = dict(in_chans=cfg.input_size[0], num_classes=cfg.num_classes)
    wrong = {k: (args.get(k), v) for k, v in expected.items() if args.get(k, v) != v}
    extra = {k: v for k, v in args.items() if k not in expected and k not in _EXPORT_ARGS}
    if wrong or extra:
        problems = [f'{k}={got!r} where {name} has {want!r}' for k, (got, want) in wrong.items()]
        problems += [f'{k}={v!r}, which {name} does not set' for k, v in extra.items()]
        raise PublishError(
            f'{config_path}: these weights were converted with other model settings than '
            f'timm.create_model({name!r}) uses: ' + '; '.join(problems))
    return weights


def publish(
        src: Union[str, Path],
        repo_id: str,
        dry_run: bool = False,
        out: Optional[Union[str, Path]] = None,
        token: Optional[str] = None,
        private: bool = False,
        revision: Optional[str] = None,
        overwrite: bool = False,
) -> PublishResult:
    """Export `src` as the registered `arch.tag` named by `repo_id` with its card, and upload it unless `dry_run`."""
    src = Path(src)
    name = repo_id.rsplit('/', 1)[-1]
    if name not in published_names():
        raise PublishError(f'{repo_id}: {name!r} is not a published arch.tag of timm-gcp '
                           f'(one with hf_hub_id in the registry)')
    if dry_run and out is None:
        raise PublishError('--dry-run needs --out DIR for the folder that would be uploaded')
    card = render_card(name)
    weights = _check_source(src, name)
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights))).eval()
    except (RuntimeError, ValueError) as e:
        raise PublishError(f'{weights}: does not load as {name}: {e}') from None

    staging = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f'timm-gcp-{name}.')) / name
    try:
        export_for_hub(model, staging, card=card, overwrite=overwrite)
    except FileExistsError as e:
        raise PublishError(f'{e} (pass --overwrite to replace it)') from None
    uploaded = None
    try:
        if not dry_run:
            uploaded = upload_folder(staging, repo_id, token=token, private=private, revision=revision,
                                     commit_message=f'Add {name} (timm-gcp)')
    except Exception as e:  # the Hub client's HTTP, auth and offline errors
        raise PublishError(f'{repo_id}: upload failed: {type(e).__name__}: {e}') from e
    finally:
        if out is None:
            shutil.rmtree(staging.parent, ignore_errors=True)
    return PublishResult(name=name, repo_id=repo_id, folder=staging, uploaded=uploaded)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('src', help='a `timm-gcp convert` output folder (model.safetensors, config.json)')
    parser.add_argument('--repo-id', required=True, help='ORG/ARCH.TAG, e.g. timm-gcp/ms_resnet50_isqrt.tpami_in1k')
    parser.add_argument('--dry-run', action='store_true', help='write the folder to --out, upload nothing')
    parser.add_argument('--out', default=None, help='where to write the export (kept after the upload)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out folder')
    parser.add_argument('--token', default=None, help='Hub token (default: the logged-in one, or HF_TOKEN)')
    parser.add_argument('--private', action='store_true', help='create the repo as private')
    parser.add_argument('--revision', default=None, help='branch to upload to')


def run(args: argparse.Namespace) -> int:
    try:
        result = publish(
            args.src, args.repo_id, dry_run=args.dry_run, out=args.out, token=args.token, private=args.private,
            revision=args.revision, overwrite=args.overwrite)
    except PublishError as e:
        print(f'timm-gcp publish: error: {e}', file=sys.stderr)
        return 1
    files = ', '.join(sorted(p.name for p in result.folder.iterdir())) if result.folder.exists() else ''
    if args.dry_run:
        print(f'dry run: {result.folder} holds what would be uploaded to {result.repo_id}: {files}')
    else:
        kept = f' (export kept in {result.folder})' if files else ''
        print(f'uploaded {result.name} to https://huggingface.co/{result.repo_id}{kept}')
    return 0
