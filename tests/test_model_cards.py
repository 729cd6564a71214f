"""Model cards and the README model table stay in sync with the registry and the published results."""
import re

import pytest
import timm
import yaml

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp.hub.cards import TABLE_END, TABLE_START, model_stats, render_card, render_model_table
from timm_gcp.models.registry import model_names, preset_names, release_names
from timm_gcp.models.releases import RELEASES
from timm_gcp.models.sources import PAPERS, REPOS

from tests.helpers import REPO

CARDS = REPO / 'model_cards'


def _params(name: str) -> int:
    return sum(p.numel() for p in timm.create_model(name, device='meta').parameters())


def _front_matter(text: str) -> dict:
    match = re.match(r'---\n(.*?)\n---\n', text, re.S)
    assert match, 'no YAML front matter'
    return yaml.safe_load(match.group(1))


def test_one_card_per_published_tag():
    assert sorted(p.name for p in CARDS.glob('*.md')) == sorted(f'{n}.md' for n in release_names())
    assert release_names(), 'the registry lists no published weights'


def test_published_results_cover_exactly_the_published_tags():
    assert set(RELEASES) == set(release_names())
    for name, result in RELEASES.items():
        assert result.source in REPOS and set(result.papers) <= set(PAPERS), name
        assert 0 < result.top1 < 100 and (result.top5 is None or result.top1 < result.top5 < 100), name


@pytest.mark.parametrize('name', release_names())
def test_card_matches_registry(name):
    text = (CARDS / f'{name}.md').read_text(encoding='utf-8')
    assert text == render_card(name), f'{name}.md is out of date: run timm-gcp cards'
    meta = _front_matter(text)
    cfg = timm.models.get_pretrained_cfg(name)
    assert meta['library_name'] == 'timm' and meta['datasets'] == ['imagenet-1k']
    assert {'image-classification', 'timm', 'timm_gcp'} <= set(meta['tags']) and 'transformers' not in meta['tags']
    assert meta['license'] == (cfg.license or 'unknown')
    assert f'# Model card for {name}\n' in text

    # counted here, independently of the card generator
    params = float(re.search(r'Params \(M\): ([\d.]+)', text).group(1))
    assert params == round(_params(name) / 1e6, 2)
    result = RELEASES[name]
    assert f'top-1 {result.top1:.2f} %' in text and REPOS[result.source].url in text
    assert f'**Original:** {cfg.origin_url}' in text
    for key in result.papers:
        assert PAPERS[key]['bibtex'] in text

    blocks = re.findall(r'```python\n(.*?)```', text, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        assert block.startswith('import timm_gcp'), block.splitlines()[0]
        assert f"timm.create_model('{name}', pretrained=True" in block
    # the MindSpore numerics are the ms_ architectures' own: a card names no settings
    assert 'Model settings' not in text and 'bn_eps' not in text and 'pad_type' not in text


def test_readme_model_table_is_current():
    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    section = readme[readme.index('## Models\n'):]
    assert section.index(TABLE_START) < section.index(TABLE_END) < section.index('\n## ')
    assert readme.index('## Usage\n') < readme.index('## Models\n')
    table = section[section.index(TABLE_START) + len(TABLE_START):section.index(TABLE_END)].strip()
    assert table == render_model_table(), 'README model table is out of date: run timm-gcp cards'
    models_table, presets_table = table.split('\n\n')
    rows = {line.split('|')[1].strip().strip('`'): line for line in models_table.splitlines()[2:]}
    assert list(rows) == model_names()
    presets = {line.split('|')[1].strip().strip('`'): line for line in presets_table.splitlines()[2:]}
    assert list(presets) == preset_names()
    for name, line in presets.items():  # each preset row lists its tags (the backbone's)
        tags = [n.split('.', 1)[1] for n in timm.list_models(name, include_tags=True) if '.' in n]
        assert tags and all(f'`{tag}`' in line.split('|')[5] for tag in tags), name
    for name, result in RELEASES.items():
        assert f'| {result.top1:.2f} |' in rows[name], name
        if result.published:
            assert f'huggingface.co/{result.hub_id}' in rows[name], name
        else:  # no Hub link for weights that are not there; the authors' page and the converter instead
            assert 'huggingface.co' not in rows[name] and 'not uploaded' in rows[name], name
            assert result.page in rows[name] and 'timm-gcp convert' in rows[name], name
    assert '| - | - |' in rows['resnet152_isqrt']  # no weights, no published number


def test_measured_stats_against_the_spec():
    """docs/architectures.md, "Parameter counts and FLOPs": exact parameter counts, and 6.266 G conv + linear MACs
    for ResNet-50 (d=128) plus about 0.03 G for the covariance and Newton-Schulz products."""
    r50 = model_stats('resnet50_isqrt')
    assert r50.params == 32_027_432 and r50.feature_size == 8256 and r50.image_size == (224, 224)
    assert 6.266 + 0.02 < r50.gmacs < 6.266 + 0.04
    assert model_stats('resnet50_isqrt_d256').params == 56_929_832
    assert model_stats('resnet50_isqrt').feature_reductions == (2, 4, 8, 16, 16)
