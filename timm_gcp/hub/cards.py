"""`timm-gcp cards`: model cards of the authors' weights and the generated tables, from the registry.

Every release `arch.tag` (`timm_gcp.models.releases`: the authors' weights, converted) gets
`<arch>.<tag>.md` from one template in timm's Hub card format; the README's `<!-- model-table -->`
holds a table of every registered model and where its weights stand, and docs/checkpoints.md's
`<!-- weights-table -->` the authors' accuracy, file and links per tag. Parameters and GMACs are
measured here, on the meta device, so they follow the code. `timm-gcp cards` rewrites the cards folder
and both pages (by default `model_cards/`, `README.md` and `docs/checkpoints.md` of the working
directory, as in a checkout of timm-gcp); `--check` only reports drift.
"""
import argparse
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import timm
import torch

from .._errors import UsageError, path_problem, usage_errors
from ..export.folder import write_text_atomic
from ..measure import count_flops
from ..models.gcp_resnet import GCPResNet
from ..models.registry import model_names, preset_names, release_names
from ..models.releases import RELEASES, Download, Release, local_file
from ..models.sources import PAPERS, REPOS
from .evaluate import Accuracy

__all__ = [
    'ModelStats', 'classification_code', 'front_matter', 'measure_model', 'model_stats', 'papers_lines', 'render_card',
    'render_model_table', 'render_weights_table', 'GENERATED_TABLES', 'with_table', 'write_cards', 'update_table',
    'add_arguments', 'run',
]

TABLE_START, TABLE_END = '<!-- model-table -->', '<!-- /model-table -->'
# the authors' weights per tag, in docs/checkpoints.md, "Getting the weights"
WEIGHTS_START, WEIGHTS_END = '<!-- weights-table -->', '<!-- /weights-table -->'
_METHODS = {
    'isqrt': 'an iSQRT-COV (fast MPN-COV) head: covariance, 5 Newton-Schulz iterations for the matrix square root',
    'dropcov': 'a DropCov head: adaptive channel dropout before the covariance in training, plain covariance at '
               'inference',
    'mpncov': 'an MPN-COV head: covariance, exact matrix square root by eigendecomposition',
}


@dataclass(frozen=True)
class ModelStats:
    params: int
    gmacs: float  # multiply-accumulates of convolutions, linear layers and matrix products
    image_size: Tuple[int, int]
    num_features: int  # channels of forward_features
    feature_size: int  # length of the pooled vector the classifier sees
    feature_channels: Optional[Tuple[int, ...]]  # features_only levels (listed for the ResNets)
    feature_reductions: Optional[Tuple[int, ...]]
    description: str


@functools.lru_cache(maxsize=None)
def model_stats(arch: str) -> ModelStats:
    """Parameters, GMACs at the default cfg's input size and head sizes of a registered architecture (meta device).

    Tags of one architecture share these: their settings (padding, BN eps) change neither count.
    """
    return measure_model(timm.create_model(arch, device='meta'), arch)


def measure_model(model: torch.nn.Module, arch: str) -> ModelStats:
    """`ModelStats` of a model of the registered architecture `arch`, built on the meta device."""
    model.eval()
    in_chans, height, width = model.pretrained_cfg['input_size']
    flops = count_flops(model, torch.empty(1, in_chans, height, width, device='meta'))
    channels = reductions = None
    if isinstance(model, GCPResNet):
        channels = tuple(f['num_chs'] for f in model.feature_info)
        reductions = tuple(f['reduction'] for f in model.feature_info)
    return ModelStats(
        params=sum(p.numel() for p in model.parameters()),
        gmacs=flops / 2e9,
        image_size=(height, width),
        num_features=model.num_features,
        feature_size=model.head_hidden_size,
        feature_channels=channels,
        feature_reductions=reductions,
        description=_description(arch, model, model.head_hidden_size),
    )


def _description(arch: str, model: torch.nn.Module, feature_size: int) -> str:
    """The entrypoint's docstring, then what the family computes."""
    lead = (timm.models.model_entrypoint(arch).__doc__ or arch).strip().splitlines()[0].rstrip('.')
    method = next((part for part in arch.split('_') if part in _METHODS), '')
    if isinstance(model, GCPResNet) and method in _METHODS:
        return (f'{lead}. Built on timm\'s ResNet (v1.5) with the last stage at stride 1, and {_METHODS[method]}, '
                f'upper triangle ({feature_size} values), linear classifier')
    doc = (type(model).__doc__ or '').strip().splitlines()
    return f'{lead}. {doc[0].rstrip(".")}' if doc else lead


def papers_lines(keys: Tuple[str, ...]) -> str:
    lines = []
    for key in keys:
        paper = PAPERS[key]
        link = f': {paper["url"]}' if paper['url'] else ''
        lines.append(f'  - {paper["title"]} ({paper["venue"]}){link}')
    return '\n'.join(lines)


def _code_license(origin_url: str) -> str:
    license = next(repo.license for repo in REPOS.values() if repo.url == origin_url)
    if license == 'unknown':
        return 'their code has no license file'
    return f'their code is under the {license.upper()} license'


def front_matter(license: str, dataset: str = '') -> str:
    """The YAML header of a timm-gcp card on the Hub (timm's tags, the license, the training dataset if known)."""
    datasets = f'datasets:\n- {dataset}\n' if dataset else ''
    return ('---\ntags:\n- image-classification\n- timm\n- timm_gcp\nlibrary_name: timm\n'
            f'license: {license}\n{datasets}---')


def _measured(result: Release, measured: Optional[Accuracy]) -> str:
    if measured is None:
        return ('These are the authors\' numbers for the original weights, not a re-evaluation of this '
                'conversion.')
    gap = measured.top1 - result.top1
    return (f'Measured on this conversion by `timm-gcp release`: top-1 {measured.top1:.2f} %, top-5 '
            f'{measured.top5:.2f} % on the {measured.images} images of `{measured.data}` (timm\'s validation '
            f'transform with this model\'s pretrained cfg), {gap:+.2f} points from the authors\' top-1.')


def classification_code(ref: str) -> str:
    """The card's Python block that classifies an image with `ref` (a registered `arch.tag` or `hf-hub:ORG/NAME`)."""
    return f'''```python
import timm_gcp  # registers the timm-gcp models in timm
import timm
import torch
from urllib.request import urlopen
from PIL import Image

img = Image.open(urlopen(
    'https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/beignets-task-guide.png'))

model = timm.create_model('{ref}', pretrained=True).eval()
data_config = timm.data.resolve_model_data_config(model)
transforms = timm.data.create_transform(**data_config, is_training=False)

with torch.no_grad():
    output = model(transforms(img).unsqueeze(0))
top5_probabilities, top5_class_indices = torch.topk(output.softmax(dim=1) * 100, k=5)
```
'''


def render_card(name: str, measured: Optional[Accuracy] = None, repo_id: Optional[str] = None) -> str:
    """The Hub README of the authors' weights of a release `arch.tag`, converted.

    `measured`: what `timm-gcp release` measured on this conversion, written next to the authors'
    numbers. `repo_id`: the Hub repo the card goes to, if not the release's own (the usage code
    then loads `hf-hub:<repo_id>`).
    """
    arch, tag = name.split('.')
    cfg = timm.models.get_pretrained_cfg(name)
    stats = model_stats(arch)
    result = RELEASES[name]
    ref = name if repo_id in (None, result.hub_id) else f'hf-hub:{repo_id}'
    papers = tuple(dict.fromkeys(result.papers))
    height, width = stats.image_size
    top5 = f', top-5 {result.top5:.2f} %' if result.top5 is not None else ''
    note = f'\n\nNote: {result.note}.' if result.note else ''
    embedding_shape = f'# (1, {stats.feature_size}): the pooled vector the classifier sees'
    features = unpooled = ''
    if stats.feature_channels is not None:
        pool_h, pool_w = cfg.pool_size
        unpooled = (f'\n    feature_map = model.forward_features(transforms(img).unsqueeze(0))  '
                    f'# (1, {stats.num_features}, {pool_h}, {pool_w})')
        shapes = ', '.join(f'(1, {c}, {height // r}, {width // r})'
                           for c, r in zip(stats.feature_channels, stats.feature_reductions))
        features = f'''
### Feature Map Extraction

```python
import timm_gcp  # registers the timm-gcp models in timm
import timm
import torch

model = timm.create_model('{ref}', pretrained=True, features_only=True).eval()
data_config = timm.data.resolve_model_data_config(model)
transforms = timm.data.create_transform(**data_config, is_training=False)

with torch.no_grad():
    feature_maps = model(transforms(img).unsqueeze(0))  # img: a PIL image
for f in feature_maps:
    print(f.shape)  # {shapes}
```
'''
    citations = '\n'.join(PAPERS[key]['bibtex'] for key in papers)
    return f'''{front_matter(cfg.license or 'unknown', 'imagenet-1k')}
# Model card for {name}

{stats.description}. Trained on ImageNet-1k by the paper authors; weights converted from
{cfg.origin_url} to timm by the timm-gcp package (`timm-gcp convert`).

## Model Details
- **Model Type:** Image classification / feature backbone
- **Model Stats:**
  - Params (M): {stats.params / 1e6:.2f}
  - GMACs: {stats.gmacs:.2f}
  - Image size: {height} x {width}
  - Pooled feature size: {stats.feature_size}
- **Papers:**
{papers_lines(papers)}
- **Original:** {cfg.origin_url}
- **License:** the authors state none for these weights; {_code_license(cfg.origin_url)}
- **Dataset:** ImageNet-1k

GMACs count convolutions, linear layers and the head's matrix products (covariance, Newton-Schulz) at
{height} px, measured by timm-gcp; an eigendecomposition is not counted.

## Model Usage
### Image Classification

{classification_code(ref)}{features}
### Image Embeddings

```python
import timm_gcp  # registers the timm-gcp models in timm
import timm
import torch

model = timm.create_model('{ref}', pretrained=True, num_classes=0).eval()
data_config = timm.data.resolve_model_data_config(model)
transforms = timm.data.create_transform(**data_config, is_training=False)

with torch.no_grad():
    embedding = model(transforms(img).unsqueeze(0))  {embedding_shape}{unpooled}
```

## Published Results

ImageNet-1k validation, {height} px, single centre crop: top-1 {result.top1:.2f} %{top5}, as reported
by the authors in the [{result.source}]({REPOS[result.source].url}) README (row "{result.row}").
{_measured(result, measured)}{note}

## Citation
```bibtex
{citations}
```
'''


def _weights_cell(name: str) -> str:
    release = RELEASES.get(name)
    if release is None:
        return '-'
    if release.published:
        return f'[{release.hub_id}](https://huggingface.co/{release.hub_id})'
    return f"not uploaded; [authors' file]({release.page}) + `timm-gcp convert`"


def render_model_table() -> str:
    """Markdown tables (between the README's model-table markers): the papers' models, then the presets."""
    rows = [
        "| Model | Params (M) | GMACs | Feature size | Authors' top-1 (%) | Weights |",
        '|---|---:|---:|---:|---:|---|',
    ]
    for name in model_names():
        stats = model_stats(name.split('.')[0])
        result = RELEASES.get(name)
        top1 = f'{result.top1:.2f}' if result else '-'
        rows.append(f'| `{name}` | {stats.params / 1e6:.2f} | {stats.gmacs:.2f} | {stats.feature_size} | {top1} '
                    f'| {_weights_cell(name)} |')
    rows += [
        '',
        "| Preset | Params (M) | GMACs | Feature size | Trunk tags (the backbone's; the GCP head is untrained) |",
        '|---|---:|---:|---:|---|',
    ]
    for name in preset_names():
        stats = model_stats(name)
        tags = ', '.join(f'`{n.split(".", 1)[1]}`' for n in timm.list_models(name, include_tags=True) if '.' in n)
        rows.append(f'| `{name}` | {stats.params / 1e6:.2f} | {stats.gmacs:.2f} | {stats.feature_size} | {tags} |')
    return '\n'.join(rows)


def _link(download: Download) -> str:
    code = f' (code `{download.extract_code}`)' if download.extract_code else ''
    return f'[{download.host}]({download.url}){code}'


def render_weights_table() -> str:
    """Markdown table (between docs/checkpoints.md's weights-table markers): per release tag, the authors' accuracy,
    where they report it, and their file: its format, the name to save it under and the download links."""
    rows = [
        "| tag | authors' top-1 / top-5 (%) | reported in (row) | format | save as | links |",
        '|---|---|---|---|---|---|',
    ]
    for r in RELEASES.values():
        accuracy = f'{r.top1:.2f}' + ('' if r.top5 is None else f' / {r.top5:.2f}')
        rows.append(f'| `{r.name}` | {accuracy} | {r.source} (`{r.row}`) | {r.file_format} | `{local_file(r)}` '
                    f'| {"; ".join(_link(d) for d in r.downloads)} |')
    return '\n'.join(rows)


# the generated tables: markers and what renders them
GENERATED_TABLES = {
    'model table': (TABLE_START, TABLE_END, render_model_table),
    'weights table': (WEIGHTS_START, WEIGHTS_END, render_weights_table),
}


def with_table(text: str, table: str) -> str:
    """`text` with the generated `table` (a key of GENERATED_TABLES) between its markers, rendered anew."""
    start, end, render = GENERATED_TABLES[table]
    pattern = re.compile(re.escape(start) + r'.*?' + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f'no {start} ... {end} markers (the {table})')
    return pattern.sub(lambda _: f'{start}\n{render()}\n{end}', text)


def write_cards(card_dir: Path, check: bool = False) -> List[str]:
    """Write every card (or, with `check`, only compare); returns the names whose card changed or is missing."""
    drift = []
    expected = {f'{name}.md': render_card(name) for name in release_names()}
    for file_name, text in expected.items():
        path = card_dir / file_name
        if not path.is_file() or path.read_text(encoding='utf-8') != text:
            drift.append(file_name)
            if not check:
                card_dir.mkdir(parents=True, exist_ok=True)
                write_text_atomic(path, text)
    for path in sorted(card_dir.glob('*.md')) if card_dir.is_dir() else []:
        if path.name not in expected:
            drift.append(path.name)
            if not check:
                path.unlink()
    return drift


def update_table(path: Path, table: str, check: bool = False) -> bool:
    """Render the generated `table` in the file at `path`; returns whether it changed (or, with `check`, would)."""
    text = path.read_text(encoding='utf-8')
    new = with_table(text, table)
    if new != text and not check:
        write_text_atomic(path, new)
    return new != text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--cards', type=Path, default=Path('model_cards'), help='folder of the cards (model_cards)')
    parser.add_argument('--readme', type=Path, default=Path('README.md'), help='README with the model table')
    parser.add_argument('--weights-doc', type=Path, default=None,
                        help="page with the authors' weights table (default: docs/checkpoints.md beside the README)")
    parser.add_argument('--check', action='store_true', help='report drift, write nothing')


def run(args: argparse.Namespace) -> int:
    pages = {args.readme: 'model table', args.weights_doc or args.readme.parent / 'docs' / 'checkpoints.md':
             'weights table'}
    if args.cards.exists() and not args.cards.is_dir():
        raise UsageError(f'--cards {args.cards}: {path_problem(args.cards, "folder")}')
    for path, table in pages.items():  # every page is checked before anything is written
        problem = path_problem(path)
        if problem:
            raise UsageError(f'{path}: {problem} (run from a checkout of timm-gcp, or pass --readme, '
                             f'--weights-doc and --cards)')
        with usage_errors(ValueError, prefix=f'{path}: '):
            with_table(path.read_text(encoding='utf-8'), table)
    drift = write_cards(args.cards, check=args.check)
    drift += [str(path) for path, table in pages.items() if update_table(path, table, check=args.check)]
    verb = 'out of date' if args.check else 'updated'
    for item in drift:
        print(f'{verb}: {item}')
    return 1 if args.check and drift else 0
