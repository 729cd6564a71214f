"""`timm-gcp publish`: upload a converted checkpoint of any timm-gcp model to any Hub repo, with an honest card.

SRC is a `timm-gcp convert` output (model.safetensors, config.json, provenance.json and, for a
training run, args.yaml / summary.csv). It must load as the timm-gcp architecture its config
names (`local-dir:`), and the card says what is known of the weights:

* an authors' release (provenance.json names the release tag, as `timm-gcp convert --model
  <arch>.<tag>` writes it): the release's card (`timm_gcp.hub.cards`), with the accuracy
  `timm-gcp release` measured if given; the release's own repo (timm-gcp/<arch>.<tag>) takes
  nothing else, and only with the settings that `timm.create_model('<arch>.<tag>')` uses;
* anything else: `timm_gcp.hub.run_card`, from the model, the provenance and the training run
  (`--train-dir`, or the run files in SRC): dataset, epochs, best top-1 / top-5. It never claims
  the method's authors trained the weights.

The folder (SRC's files plus README.md) is staged whole or not at all; `--dry-run --out DIR` writes
exactly the folder that would be uploaded and uploads nothing.
"""
import argparse
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

import timm
from huggingface_hub import HfApi
from huggingface_hub.utils import HFValidationError, validate_repo_id
from timm.models import split_model_name_tag
from safetensors import SafetensorError

from .._errors import CommandError, path_problem, usage_errors
from ..export.folder import PROVENANCE_FILE, RUN_FILES, check_out_dir, export_model_args, write_dir_atomic
from ..models.registry import is_gcp_model
from ..models.releases import RELEASES
from .cards import measure_model, render_card
from .evaluate import Accuracy
from .run_card import read_run, render_run_card

__all__ = ['PublishError', 'PublishResult', 'check_repo_id', 'check_request', 'publish', 'upload_folder',
           'add_arguments', 'run']

# what a `timm-gcp convert` folder may hold besides the weights and config; uploaded as they are
_SOURCE_FILES = ('config.json', 'model.safetensors', PROVENANCE_FILE, *RUN_FILES)
# model args every export records; any other one is a setting that the registered arch.tag lacks
_EXPORT_ARGS = ('in_chans', 'num_classes', 'global_pool', 'img_size')


class PublishError(CommandError, ValueError):
    """A folder or repo id that cannot be published; the message names it and the problem."""


@dataclass
class PublishResult:
    name: str
    repo_id: str
    folder: Path  # what was (or, in a dry run, would be) uploaded; gone after a real upload without --out
    uploaded: Any  # the Hub client's answer, None in a dry run
    authors_release: Optional[str] = None  # the release tag, when the weights are the authors'


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except json.JSONDecodeError as e:
        raise PublishError(f'{path}: not valid JSON ({e})') from None


def _check_release_settings(config: Dict[str, Any], name: str, config_path: Path) -> None:
    """Weights for the release's own repo must be what `timm.create_model(name, pretrained=True)` computes."""
    cfg = timm.models.get_pretrained_cfg(name)
    args = export_model_args(config)
    expected = dict(in_chans=cfg.input_size[0], num_classes=cfg.num_classes)
    wrong = {k: (args.get(k), v) for k, v in expected.items() if args.get(k, v) != v}
    extra = {k: v for k, v in args.items() if k not in expected and k not in _EXPORT_ARGS}
    if wrong or extra:
        problems = [f'{k}={got!r} where {name} has {want!r}' for k, (got, want) in wrong.items()]
        problems += [f'{k}={v!r}, which {name} does not set' for k, v in extra.items()]
        raise PublishError(
            f'{config_path}: these weights were converted with other model settings than '
            f'timm.create_model({name!r}) uses: ' + '; '.join(problems))


def _authors_release(src: Path, config: Dict[str, Any], provenance: Dict[str, Any], repo_id: str) -> Optional[str]:
    """The release tag when provenance.json says the weights are the authors', else None.

    A release's own repo (timm-gcp/<arch>.<tag>) takes only that release's weights, converted with
    the settings `timm.create_model('<arch>.<tag>')` uses.
    """
    tag = provenance.get('authors_release')
    own_repo = {r.hub_id: r.name for r in RELEASES.values()}.get(repo_id)
    if own_repo is not None and tag != own_repo:
        held = f"the authors' weights of {tag}" if tag else 'weights that are not theirs'
        raise PublishError(f"{repo_id} is the Hub repo of the authors' weights of {own_repo}; {src} holds {held} "
                           f'(provenance.json): publish it under another name')
    if tag is not None and tag not in RELEASES:
        raise PublishError(f'{src / PROVENANCE_FILE}: names {tag!r}, which is no release of timm-gcp')
    if own_repo is not None:
        _check_release_settings(config, tag, src / 'config.json')
    return tag


def _card(src: Path, repo_id: str, config: Dict[str, Any], provenance: Dict[str, Any], release: Optional[str],
          train_dir: Optional[Path], measured: Optional[Accuracy], license: str) -> str:
    if release is not None:
        return render_card(release, measured=measured, repo_id=repo_id)
    run_dir = train_dir or src
    run = None
    if (run_dir / 'args.yaml').is_file():
        summary = run_dir / 'summary.csv'
        try:
            run = read_run((run_dir / 'args.yaml').read_text(encoding='utf-8'),
                           summary.read_text(encoding='utf-8') if summary.is_file() else '')
        except (ValueError, KeyError) as e:
            raise PublishError(f'{run_dir}: cannot read the training run: {e}') from None
    arch, model_args = config['architecture'], export_model_args(config)
    trained = run.args.get('model') if run is not None else None
    if isinstance(trained, str) and timm.is_model(trained) and split_model_name_tag(trained)[0] != arch:
        raise PublishError(f"{run_dir / 'args.yaml'}: the run trained {trained}, but {src} holds {arch}: give the "
                           f'--train-dir of the run these weights come from')
    # the export itself, at the input size of its config (a run's img_size), not the registered model's default
    stats = measure_model(timm.create_model(f'local-dir:{src}', device='meta'), arch)
    return render_run_card(repo_id, arch, model_args, stats, provenance=provenance, run=run, license=license)


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


def check_repo_id(repo_id: str) -> None:
    """PublishError unless `repo_id` is ORG/NAME that the Hub accepts (checked offline, by huggingface_hub)."""
    if repo_id.count('/') != 1 or not all(repo_id.split('/')):
        raise PublishError(f'{repo_id!r}: not a Hub repo id (ORG/NAME)')
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise PublishError(f'{repo_id!r}: not a valid Hub repo id: {e}') from None


def check_request(src: Path, repo_id: str, dry_run: bool, out: Optional[Union[str, Path]],
                  train_dir: Optional[Union[str, Path]]) -> None:
    """PublishError naming the first request that cannot be met: the repo id, a dry run without `out`, the folders."""
    check_repo_id(repo_id)
    if dry_run and out is None:
        raise PublishError('--dry-run needs --out DIR for the folder that would be uploaded')
    if out is not None:
        try:
            check_out_dir(out)
        except NotADirectoryError as e:
            raise PublishError(f'--out {e}') from None
    problem = path_problem(src, 'folder')
    if problem:
        raise PublishError(f'{src}: {problem} (expected a `timm-gcp convert` output folder)')
    for required in ('config.json', 'model.safetensors'):
        if not (src / required).is_file():
            raise PublishError(f'{src}: no {required} (expected a `timm-gcp convert` output folder)')
    problem = path_problem(train_dir, 'folder') if train_dir is not None else None
    if problem:
        raise PublishError(f'--train-dir {train_dir}: {problem} (expected a timm train.py output folder)')
    if train_dir is not None and not (Path(train_dir) / 'args.yaml').is_file():
        raise PublishError(f'{train_dir}: no args.yaml (expected a timm train.py output folder)')


def publish(
        src: Union[str, Path],
        repo_id: str,
        train_dir: Optional[Union[str, Path]] = None,
        measured: Optional[Accuracy] = None,
        license: str = 'unknown',
        dry_run: bool = False,
        out: Optional[Union[str, Path]] = None,
        token: Optional[str] = None,
        private: bool = False,
        revision: Optional[str] = None,
        overwrite: bool = False,
) -> PublishResult:
    """Stage `src` with its card as the Hub repo `repo_id` (ORG/NAME), and upload it unless `dry_run`."""
    src = Path(src)
    check_request(src, repo_id, dry_run, out, train_dir)
    config = _read_json(src / 'config.json')
    arch = config.get('architecture')
    if not isinstance(arch, str) or not timm.is_model(arch) or not is_gcp_model(arch):
        raise PublishError(f'{src / "config.json"}: architecture {arch!r} is not a timm-gcp model')
    provenance = _read_json(src / PROVENANCE_FILE) if (src / PROVENANCE_FILE).is_file() else {}
    release = _authors_release(src, config, provenance, repo_id)
    try:
        timm.create_model(f'local-dir:{src}', pretrained=True)
    except (RuntimeError, ValueError, OSError, SafetensorError) as e:  # SafetensorError: not a safetensors file
        raise PublishError(f'{src}: does not load as {arch}: {e}') from None
    card = _card(src, repo_id, config, provenance, release, Path(train_dir) if train_dir else None, measured,
                 license)

    def write(tmp: Path) -> None:
        for name in _SOURCE_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        if train_dir is not None:
            for name in RUN_FILES:
                if (Path(train_dir) / name).is_file():
                    shutil.copyfile(Path(train_dir) / name, tmp / name)
        (tmp / 'README.md').write_text(card, encoding='utf-8')

    name = repo_id.split('/')[1]
    staging = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f'timm-gcp-{name}.')) / name
    try:
        write_dir_atomic(staging, write, overwrite=overwrite)
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
    return PublishResult(name=name, repo_id=repo_id, folder=staging, uploaded=uploaded, authors_release=release)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('src', help='a `timm-gcp convert` output folder (model.safetensors, config.json, ...)')
    parser.add_argument('--repo-id', required=True,
                        help='ORG/NAME on the Hub, e.g. someone/resnet50_isqrt.mydata')
    parser.add_argument('--train-dir', default=None,
                        help='the train.py output folder of the run (args.yaml, summary.csv), if SRC lacks them')
    parser.add_argument('--license', default='unknown', help='license of the weights for the card (default: unknown)')
    parser.add_argument('--dry-run', action='store_true', help='write the folder to --out, upload nothing')
    parser.add_argument('--out', default=None, help='where to write the export (kept after the upload)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out folder')
    parser.add_argument('--token', default=None, help='Hub token (default: the logged-in one, or HF_TOKEN)')
    parser.add_argument('--private', action='store_true', help='create the repo as private')
    parser.add_argument('--revision', default=None, help='branch to upload to')


def run(args: argparse.Namespace) -> int:
    with usage_errors(PublishError):
        check_request(Path(args.src), args.repo_id, args.dry_run, args.out, args.train_dir)
    result = publish(
        args.src, args.repo_id, train_dir=args.train_dir, license=args.license, dry_run=args.dry_run,
        out=args.out, token=args.token, private=args.private, revision=args.revision, overwrite=args.overwrite)
    files = ', '.join(sorted(p.name for p in result.folder.iterdir())) if result.folder.exists() else ''
    kind = f"the authors' weights of {result.authors_release}" if result.authors_release else 'not an authors\' release'
    if args.dry_run:
        print(f'dry run: {result.folder} holds what would be uploaded to {result.repo_id} ({kind}): {files}')
    else:
        kept = f' (export kept in {result.folder})' if files else ''
        print(f'uploaded {result.name} ({kind}) to https://huggingface.co/{result.repo_id}{kept}')
    return 0
