"""The model card of weights that are not an authors' release: a user's training run, or of unknown origin.

It states only what is known: the model and its settings (config.json), where the weights come
from (provenance.json: the source file and its sha256), and for a timm `train.py` run its
dataset, epochs and best validation top-1 / top-5 (`args.yaml`, `summary.csv`). It never says the
method's authors trained the weights; it cites the method's papers.
"""
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import yaml

from ..checkpoints.train_run import data_dir
from ..models.sources import PAPERS
from .cards import ModelStats, classification_code, front_matter, papers_lines

__all__ = ['RunSummary', 'method_papers', 'read_run', 'render_run_card']

# train.py arguments the card lists when the run recorded them
_SETTINGS = ('model', 'pretrained', 'initial_checkpoint', 'num_classes', 'in_chans', 'img_size', 'input_size',
             'crop_pct', 'interpolation', 'mean', 'std', 'batch_size', 'opt', 'lr', 'weight_decay', 'sched', 'epochs',
             'warmup_epochs', 'smoothing', 'mixup', 'cutmix', 'model_ema', 'amp', 'seed')


@dataclass(frozen=True)
class RunSummary:
    """A timm `train.py` run as its `args.yaml` and `summary.csv` record it."""
    args: Dict[str, Any]
    dataset: str
    epochs_run: int
    best_epoch: Optional[int]
    best_top1: Optional[float]
    best_top5: Optional[float]


def read_run(args_yaml: str, summary_csv: str = '') -> RunSummary:
    """The run's settings, dataset and best validation epoch (highest `eval_top1` of `summary.csv`)."""
    args = yaml.safe_load(args_yaml) or {}
    if not isinstance(args, dict):
        raise ValueError('args.yaml does not hold a mapping of train.py arguments')
    rows = list(csv.DictReader(io.StringIO(summary_csv))) if summary_csv.strip() else []
    scored = [r for r in rows if r.get('eval_top1') not in (None, '')]
    best = max(scored, key=lambda r: float(r['eval_top1'])) if scored else None
    dataset = args.get('dataset') or Path(data_dir(args) or '').name
    return RunSummary(
        args=args,
        dataset=str(dataset),
        epochs_run=len(rows),
        best_epoch=int(best['epoch']) if best is not None else None,
        best_top1=float(best['eval_top1']) if best is not None else None,
        best_top5=float(best['eval_top5']) if best is not None and best.get('eval_top5') else None,
    )


def method_papers(arch: str) -> Tuple[str, ...]:
    """PAPERS keys of the methods an architecture name carries (`resnet50_isqrt` -> isqrt)."""
    parts = arch.split('_')
    return tuple(key for key in ('isqrt', 'dropcov', 'mpncov', 'sot') if key in parts)


def _origin(provenance: Optional[Dict[str, Any]], run: Optional[RunSummary]) -> str:
    source = (provenance or {}).get('source') or {}
    file = f" from `{source['file']}` (sha256 `{source['sha256']}`)" if source.get('file') else ''
    if run is not None:
        data = f' on `{run.dataset}`' if run.dataset else ''
        return (f"Trained with timm's `train.py`{data} by the uploader, not by the method's authors; converted"
                f'{file} by `timm-gcp convert`.')
    return (f'Converted{file} by `timm-gcp convert`. timm-gcp has no record of how or by whom these weights '
            f'were trained.')


def _training(run: RunSummary) -> str:
    lines = ['## Training', '', '| setting | value |', '|---|---|']
    lines += [f'| {key} | `{run.args[key]}` |' for key in _SETTINGS if run.args.get(key) not in (None, '', [])]
    planned = run.args.get('epochs')
    epochs = f'{run.epochs_run} epochs' + (f' (of {planned} planned)' if planned and planned != run.epochs_run else '')
    if run.best_top1 is not None:
        top5 = f', top-5 {run.best_top5:.2f} %' if run.best_top5 is not None else ''
        result = (f'Best validation accuracy in `summary.csv`: top-1 {run.best_top1:.2f} %{top5} at epoch '
                  f"{run.best_epoch}, after {epochs}, as timm's `train.py` measured it on the run's validation split.")
    else:
        result = f'The run recorded {epochs} and no validation accuracy.'
    return '\n'.join(lines) + f'\n\n{result}\n'


def render_run_card(
        repo_id: str,
        arch: str,
        model_args: Dict[str, Any],
        stats: ModelStats,
        provenance: Optional[Dict[str, Any]] = None,
        run: Optional[RunSummary] = None,
        license: str = 'unknown',
) -> str:
    """The Hub README of `repo_id`: a timm-gcp model whose weights are not an authors' release."""
    name = repo_id.rsplit('/', 1)[-1]
    height, width = stats.image_size
    settings = ', '.join(f'{k}={v!r}' for k, v in model_args.items()) or 'the defaults'
    papers = method_papers(arch)
    citations = '\n'.join(PAPERS[key]['bibtex'] for key in papers if PAPERS[key]['bibtex'])
    dataset = f'`{run.dataset}`' if run is not None and run.dataset else 'not recorded'
    training = f'\n{_training(run)}' if run is not None else ''
    return f'''{front_matter(license)}
# Model card for {name}

The timm-gcp architecture `{arch}` with {settings} ({stats.feature_size} pooled features).
{_origin(provenance, run)}

## Model Details
- **Model Type:** Image classification / feature backbone
- **Architecture:** `{arch}` (timm-gcp)
- **Model Stats:**
  - Params (M): {stats.params / 1e6:.2f}
  - GMACs: {stats.gmacs:.2f}
  - Image size: {height} x {width}
  - Pooled feature size: {stats.feature_size}
- **Method papers:**
{papers_lines(papers)}
- **Dataset:** {dataset}
{training}
## Model Usage

{classification_code(f'hf-hub:{repo_id}')}
## Citation
```bibtex
{citations}
```
'''
