"""`timm-gcp release`: convert, check and publish every authors' file found in a folder, in one command.

For each release tag (`timm_gcp.models.releases`) whose file is in SRC_DIR (the authors' file name,
or `<arch>.<tag>` with a checkpoint extension): convert it (`timm-gcp convert`), measure top-1 /
top-5 on `--data-dir` with timm's data pipeline (`timm_gcp.hub.evaluate`), refuse a tag that
measures more than `--tolerance` points (0.3) below the authors' top-1 unless `--force`, then
publish it to ORG/<arch>.<tag> with the measured accuracy in its card (`--dry-run`: stage it in
OUT/<arch>.<tag> only). Every folder is written whole or not at all; a re-run skips the tags
already staged (dry run) or uploaded (recorded in OUT/uploaded.json); a table ends the run.
"""
import argparse
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import timm

from .._errors import UsageError, path_problem, usage_errors
from ..convert.converter import ConversionError, convert_checkpoint
from ..export.folder import write_text_atomic
from ..models.releases import RELEASES, Release, release_files
from .evaluate import Accuracy, evaluate, imagenet_class_map
from .publish import PublishError, check_repo_id, publish

__all__ = ['ReleaseRow', 'find_release_files', 'find_sources', 'format_table', 'release', 'add_arguments', 'run']

_logger = logging.getLogger(__name__)

UPLOADED = 'uploaded.json'


@dataclass
class ReleaseRow:
    """What happened to one tag."""
    name: str
    file: str
    published_top1: float
    status: str  # staged, uploaded, refused, failed, skipped (done before)
    measured: Optional[Accuracy] = None
    detail: str = ''


def find_release_files(src_dir: Path) -> Dict[str, Path]:
    """Release tag -> its file in `src_dir`, for every tag whose file is there."""
    found = {}
    for name, rel in RELEASES.items():
        path = next((src_dir / f for f in release_files(rel) if (src_dir / f).is_file()), None)
        if path is not None:
            found[name] = path
    return found


def _uploaded(out: Path) -> Dict[str, str]:
    path = out / UPLOADED
    return json.loads(path.read_text(encoding='utf-8')) if path.is_file() else {}


def _record_upload(out: Path, name: str, repo_id: str) -> None:
    done = dict(_uploaded(out), **{name: repo_id})
    write_text_atomic(out / UPLOADED, json.dumps(done, indent=2) + '\n')


def _release_one(
        rel: Release,
        path: Path,
        org: str,
        out: Path,
        data_dir: Optional[Path],
        class_map: Dict[str, int],
        tolerance: float,
        force: bool,
        dry_run: bool,
        token: Optional[str],
        batch_size: int,
        workers: int,
) -> ReleaseRow:
    row = ReleaseRow(rel.name, path.name, rel.top1, status='failed')
    work = Path(tempfile.mkdtemp(prefix=f'.{rel.name}.', suffix='.convert', dir=out))
    try:
        convert_checkpoint(path, rel.name, work / rel.name)
        if data_dir is not None:
            model = timm.create_model(f'local-dir:{work / rel.name}', pretrained=True)
            row.measured = evaluate(model, data_dir, batch_size=batch_size, workers=workers, class_map=class_map)
            shortfall = rel.top1 - row.measured.top1
            if shortfall > tolerance and not force:
                row.status = 'refused'
                row.detail = (f'{shortfall:.2f} points below the authors\' top-1 (tolerance {tolerance}); '
                              f'pass --force to publish anyway')
                return row
        repo_id = f'{org}/{rel.name}'
        publish(work / rel.name, repo_id, measured=row.measured, dry_run=dry_run, out=out / rel.name,
                token=token, overwrite=True)
        if dry_run:
            row.status = 'staged'
        else:
            _record_upload(out, rel.name, repo_id)
            row.status = 'uploaded'
        row.detail = str(out / rel.name)
    except (ConversionError, PublishError, FileNotFoundError, ValueError, RuntimeError) as e:
        row.detail = str(e).splitlines()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return row


def find_sources(src_dir: Path) -> Dict[str, Path]:
    """Release tag -> its file in `src_dir`; FileNotFoundError naming the folder when there is none."""
    problem = path_problem(src_dir, 'folder')
    if problem:
        raise FileNotFoundError(f'{src_dir}: {problem}')
    found = find_release_files(src_dir)
    if not found:
        names = ', '.join(release_files(next(iter(RELEASES.values())))[:2])
        raise FileNotFoundError(f'{src_dir}: holds no authors\' file of any release tag (file names as in the '
                                f'releases, e.g. {names})')
    return found


def release(
        src_dir: Union[str, Path],
        org: str,
        data_dir: Optional[Union[str, Path]] = None,
        dry_run: bool = False,
        out: Union[str, Path] = 'release',
        force: bool = False,
        tolerance: float = 0.3,
        token: Optional[str] = None,
        batch_size: int = 32,
        workers: int = 2,
) -> List[ReleaseRow]:
    """Convert, measure and publish (or stage) every release file in `src_dir`; one row per tag found.

    PublishError for an `org` that makes no valid Hub repo id, ValueError for a `data_dir` that is not
    ImageNet's validation set (`imagenet_class_map`), both before anything is converted.
    """
    src_dir, out = Path(src_dir), Path(out)
    found = find_sources(src_dir)
    for name in found:
        check_repo_id(f'{org}/{name}')
    class_map = imagenet_class_map(data_dir) if data_dir is not None else {}
    out.mkdir(parents=True, exist_ok=True)
    uploaded = _uploaded(out)
    rows = []
    for i, (name, path) in enumerate(found.items()):
        rel = RELEASES[name]
        done = (out / name).is_dir() if dry_run else uploaded.get(name) == f'{org}/{name}'
        if done:
            rows.append(ReleaseRow(name, path.name, rel.top1, status='skipped', detail='done in an earlier run'))
            continue
        _logger.info(f'[{i + 1}/{len(found)}] {name}: {path}')
        rows.append(_release_one(rel, path, org, out, Path(data_dir) if data_dir else None, class_map, tolerance,
                                 force, dry_run, token, batch_size, workers))
    return rows


def format_table(rows: List[ReleaseRow]) -> str:
    """The run's summary: one line per tag, measured next to published."""
    lines = ['| tag | file | authors\' top-1 | measured top-1 | measured top-5 | status | detail |',
             '|---|---|---:|---:|---:|---|---|']
    for r in rows:
        top1 = f'{r.measured.top1:.2f}' if r.measured else '-'
        top5 = f'{r.measured.top5:.2f}' if r.measured else '-'
        lines.append(f'| {r.name} | {r.file} | {r.published_top1:.2f} | {top1} | {top5} | {r.status} | {r.detail} |')
    return '\n'.join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('src_dir', help="folder of the authors' downloaded files, named as the authors name them or "
                             "<arch>.<tag>.pth / .ckpt (docs/checkpoints.md, \"Getting the weights\")")
    parser.add_argument('--org', required=True, help='Hub organisation or user to publish ORG/<arch>.<tag> to')
    parser.add_argument('--data-dir', default=None,
                        help="ImageNet's validation set (1000 class folders named by synset, n01440764 ...) to "
                             'measure top-1/top-5 on')
    parser.add_argument('--dry-run', action='store_true', help='stage the folders in --out, upload nothing')
    parser.add_argument('--out', default='release', help='staging folder, and the record of uploads (default: release)')
    parser.add_argument('--force', action='store_true', help='publish tags that measure below the authors\' top-1')
    parser.add_argument('--tolerance', type=float, default=0.3,
                        help='points of top-1 a conversion may measure below the authors\' (default 0.3)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--token', default=None, help='Hub token (default: the logged-in one, or HF_TOKEN)')


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or args.workers < 0 or not args.tolerance >= 0:
        raise UsageError(f'--batch-size must be at least 1, --workers and --tolerance at least 0; got '
                         f'{args.batch_size}, {args.workers} and {args.tolerance}')
    with usage_errors(FileNotFoundError):
        found = find_sources(Path(args.src_dir))
    with usage_errors(PublishError, prefix='--org: '):
        for name in found:
            check_repo_id(f'{args.org}/{name}')
    if args.data_dir is not None:
        with usage_errors(FileNotFoundError, ValueError, prefix='--data-dir: '):
            imagenet_class_map(args.data_dir)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    rows = release(args.src_dir, args.org, data_dir=args.data_dir, dry_run=args.dry_run, out=args.out,
                   force=args.force, tolerance=args.tolerance, token=args.token, batch_size=args.batch_size,
                   workers=args.workers)
    print(format_table(rows))
    return 1 if any(r.status in ('refused', 'failed') for r in rows) else 0
