"""The Hub folder of a model: timm's `save_for_hf` plus a model card and provenance, written atomically.

timm's `push_to_hf_hub` writes a README only when the repo has none and generates it from a dict;
timm-gcp publishes its own cards (`timm_gcp.hub.cards`), so the export is `save_for_hf` (model.safetensors
and config.json with the registered architecture and the model args) plus README.md and the files
that say where the weights come from (provenance.json, and a training run's args.yaml / summary.csv).
The folder loads with `local-dir:`; `timm_gcp.hub.publish` uploads it.

`num_classes` stays at the root of config.json only: timm 1.0.31's `save_for_hf` also writes it into
`model_args`, and transformers' `TimmWrapper` passes `num_classes` and then `**model_args` to
`timm.create_model`, which fails with the keyword given twice. timm's own loader reads the root value.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Union

from timm.models import save_for_hf
from torch import nn

from ..checkpoints.train_run import RUN_FILES

__all__ = ['AUTHORS_FIELDS', 'HUB_FILES', 'PROVENANCE_FILE', 'RUN_FILES', 'check_out_dir', 'write_dir_atomic',
           'write_text_atomic', 'own_weights', 'export_for_hub', 'export_model_args', 'umask_mode']

PROVENANCE_FILE = 'provenance.json'
HUB_FILES = ('config.json', 'model.safetensors', 'README.md', PROVENANCE_FILE)
# pretrained-cfg fields that describe the authors' weights of a tag (their paper, code, license)
AUTHORS_FIELDS = ('tag', 'origin_url', 'paper_ids', 'paper_name', 'license', 'notes')


def umask_mode(mode: int) -> int:
    """`mode` less the process's umask: what `open` (0o666) and `mkdir` (0o777) give, as timm's exporter writes.

    `tempfile` creates its files 0o600 and folders 0o700 whatever the umask; a file renamed into place
    from there gets this mode, so that a teammate or a serving container can read what they could read
    had it been written directly.
    """
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def check_out_dir(out_dir: Union[str, Path]) -> None:
    """NotADirectoryError where `out_dir` is an existing file: an export is a folder, which overwriting replaces."""
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise NotADirectoryError(f'{out_dir}: is a file, not a folder (the export is a folder of files)')


def write_dir_atomic(out_dir: Union[str, Path], write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Fill a temporary sibling of `out_dir` with `write(tmp)`, then rename it into place.

    A failure leaves neither a half-written `out_dir` nor the temporary folder; an existing
    `out_dir` is an error unless `overwrite`, and is only replaced once the new one is complete.
    The folder and its files get the modes `mkdir` and `open` would give them (`umask_mode`), not
    the private 0o700 / 0o600 of `tempfile` and of safetensors' writer.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f'{out_dir}: already exists')
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', suffix='.partial', dir=out_dir.parent))
    try:
        os.chmod(tmp, umask_mode(0o777))
        write(tmp)
        for path in tmp.rglob('*'):
            os.chmod(path, umask_mode(0o777 if path.is_dir() else 0o666))
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


def own_weights(model: nn.Module) -> nn.Module:
    """Drop the authors' paper, origin, license and tag from the model's pretrained cfg.

    The registered cfg of an architecture describes the authors' weights; an export of other
    weights (a user's training run) must not carry those claims into its config.json.
    """
    model.pretrained_cfg = {k: v for k, v in model.pretrained_cfg.items() if k not in AUTHORS_FIELDS}
    model.default_cfg = model.pretrained_cfg
    return model


def export_model_args(config: Dict[str, Any]) -> Dict[str, Any]:
    """The `timm.create_model` keyword arguments of an export's config.json: `model_args` and the root `num_classes`.

    Reads exports written before `num_classes` left `model_args` too.
    """
    args = dict(config.get('model_args') or {})
    if 'num_classes' in config:
        args.setdefault('num_classes', config['num_classes'])
    return args


def _drop_repeated_num_classes(config_path: Path) -> None:
    """Keep `num_classes` at the root of config.json only, where timm and transformers both read it."""
    config = json.loads(config_path.read_text(encoding='utf-8'))
    args = config.get('model_args') or {}
    if args.get('num_classes', config['num_classes']) != config['num_classes']:
        raise ValueError(f'config.json: num_classes {config["num_classes"]} disagrees with model_args {args}')
    args.pop('num_classes', None)
    config_path.write_text(json.dumps(config, indent=2), encoding='utf-8')


def write_text_atomic(path: Union[str, Path], text: str) -> None:
    """Write `text` to `path` through a temporary sibling renamed over it: the old file or the new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.partial', dir=path.parent)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        os.chmod(tmp, umask_mode(0o666))  # mkstemp's 0o600 would make a card or README private
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def export_for_hub(
        model: nn.Module,
        out_dir: Union[str, Path],
        card: Optional[str] = None,
        files: Optional[Dict[str, str]] = None,
        overwrite: bool = False,
        data_config: Optional[Dict[str, Any]] = None,
        label_names: Sequence[str] = (),
) -> Path:
    """Write the Hub folder of `model`: model.safetensors, config.json, README.md given a card, and `files`.

    `files` maps a file name to its text (provenance.json, a training run's args.yaml ...).
    `data_config`: the preprocessing the weights were trained with, under train.py's argument names
    (`img_size`, `input_size`, `crop_pct`, `interpolation`, `mean`, `std`), into the pretrained cfg as
    timm's `save_for_hf` resolves it; `label_names`: the classes in label order (transformers' id2label).
    The folder loads with `timm.create_model('local-dir:...', pretrained=True)` and, once `timm_gcp`
    is imported, with transformers' `AutoModelForImageClassification` and `pipeline('image-classification')`.
    """
    model_config = {'label_names': list(label_names)} if label_names else None

    def write(tmp: Path) -> None:
        save_for_hf(model, tmp, model_config=model_config, safe_serialization=True, data_config=data_config)
        _drop_repeated_num_classes(tmp / 'config.json')
        if card is not None:
            (tmp / 'README.md').write_text(card, encoding='utf-8')
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding='utf-8')

    return write_dir_atomic(out_dir, write, overwrite=overwrite)
