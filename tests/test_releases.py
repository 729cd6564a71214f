"""The releases manifest and what `pretrained=True` does when a tag's weights cannot be had (no network).

docs/checkpoints.md, "Getting the weights": an unpublished tag, or any tag offline without a cached
copy, fails at once with the authors' links and the `timm-gcp convert` command; a MindSpore file
given to timm's loader names the converter.
"""
import dataclasses
import os
import subprocess
import sys
import time

import huggingface_hub
import huggingface_hub.constants
import pytest
import timm
import torch

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp.models import releases
from timm_gcp.models.releases import RELEASES, WeightsUnavailableError, convert_command, local_file, release_files
from timm_gcp.models.sources import REPOS

from tests.helpers import REPO
from tests.helpers.layouts import mindspore_layout, write_mindspore_checkpoint

TAG = 'resnet50_isqrt_d256.gcp_in1k'


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """An empty Hub cache, and a Hub client that fails the test if it is asked for anything."""
    def called(*args, **kwargs):
        raise AssertionError('the Hub was contacted')

    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path / 'empty-cache'))
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', called)
    monkeypatch.setattr(timm.models._hub, 'hf_hub_download', called)


def test_every_release_names_its_links_and_accuracy():
    for name, rel in RELEASES.items():
        assert rel.name == name and rel.hub_id == f'timm-gcp/{name}'
        assert rel.source in REPOS and rel.page == REPOS[rel.source].url
        assert rel.downloads, name
        for link in rel.downloads:
            assert link.url.startswith(('https://drive.google.com/', 'https://pan.baidu.com/s/')), name
            assert (link.host == 'Baidu') == link.url.startswith('https://pan.baidu.com/'), name
        assert 0 < rel.top1 < 100 and (rel.top5 is None or rel.top1 < rel.top5 < 100), name
        assert rel.file_format == ('MindSpore' if name.startswith('ms_') else 'PyTorch'), name
        assert local_file(rel) == release_files(rel)[0] and len(set(release_files(rel))) == len(release_files(rel))
    # GCP_Optimization: every Baidu link with its extract code, and the file its val_download.sh loads
    gcpo = RELEASES[TAG]
    assert [str(d) for d in gcpo.downloads] == [
        'Baidu: https://pan.baidu.com/s/1gZ6_KMqfUBAjq913zKOPkw (extract code e7iy)',
        'Google Drive: https://drive.google.com/open?id=1TmnusKSArjKTTb28cnw2OzrUVc_DAi98']
    assert gcpo.file == 'ResNet50_GCP_LRnorm.pth.tar'
    assert RELEASES['resnet50_isqrt_d256.fmpn_in1k'].file == 'mpncovresnet50-15991845.pth'
    assert {n for n, r in RELEASES.items() if r.use_ema} == {'vit_dropcov_small.dc_in1k', 'vit_dropcov_t2t_14.dc_in1k'}


def test_readme_says_what_is_published():
    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    published = [r for r in RELEASES.values() if r.published]
    assert ('No converted weights are on the Hugging Face Hub yet' in readme) == (not published)
    linked = {rel.name for rel in RELEASES.values() if f'huggingface.co/{rel.hub_id}' in readme}
    assert linked == {rel.name for rel in published}  # no link to a Hub repo that holds nothing
    docs = (REPO / 'docs' / 'checkpoints.md').read_text(encoding='utf-8')
    section = docs[docs.index('## Getting the weights'):docs.index('## Published results')]
    for rel in RELEASES.values():  # the docs table lists every tag's file name and links
        row = next(line for line in section.splitlines() if line.startswith(f'| `{rel.name}` |'))
        assert f'`{local_file(rel)}`' in row and all(d.url in row for d in rel.downloads), rel.name


def _assert_actionable(message: str, rel: releases.Release) -> None:
    assert message.startswith(f'{rel.name}: no pretrained weights')
    assert rel.hub_id in message and rel.page in message and f'row "{rel.row}"' in message
    assert all(str(d) in message for d in rel.downloads)
    assert convert_command(rel) in message and f"timm.create_model('local-dir:{rel.name}', pretrained=True)" in message


@pytest.mark.parametrize('name', [TAG, 'ms_resnet50_dropcov.tpami_in1k', 'vit_dropcov_small.dc_in1k'])
def test_unpublished_tag_fails_at_once(no_hub, name):
    rel = RELEASES[name]
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as info:
        timm.create_model(name, pretrained=True)
    assert time.perf_counter() - start < 5
    _assert_actionable(str(info.value), rel)
    assert 'has not uploaded them' in str(info.value)
    if rel.use_ema:
        assert f'--model {name} --use-ema' in str(info.value)


def test_unpublished_tag_in_the_local_hub_cache_loads_from_it(monkeypatch):
    """An unpublished tag's cfg names no Hub repo (timm's listing shows no weights), but a copy of its repo in the local
    Hub cache is what `pretrained=True` loads: the repo goes into the overlay timm builds with."""
    rel = RELEASES[TAG]
    assert not rel.published and timm.models.get_pretrained_cfg(TAG).hf_hub_id is None
    monkeypatch.setattr(releases, 'hub_cached', lambda repo_id: repo_id == rel.hub_id)
    kwargs = dict(pretrained_cfg='gcp_in1k', pretrained_cfg_overlay=dict(num_classes=1000))
    releases.check_pretrained_source('resnet50_isqrt_d256', kwargs)
    assert kwargs['pretrained_cfg_overlay'] == dict(num_classes=1000, hf_hub_id=rel.hub_id)
    other = dict(pretrained_cfg='gcp_in1k', pretrained_cfg_overlay=dict(hf_hub_id='someone/theirs'))
    releases.check_pretrained_source('resnet50_isqrt_d256', other)  # weights the caller names are left alone
    assert other['pretrained_cfg_overlay'] == dict(hf_hub_id='someone/theirs')


def test_published_tag_offline_without_cache_fails_at_once(no_hub, monkeypatch):
    rel = dataclasses.replace(RELEASES[TAG], published=True)
    monkeypatch.setitem(RELEASES, TAG, rel)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(WeightsUnavailableError) as info:
        timm.create_model(TAG, pretrained=True)
    _assert_actionable(str(info.value), rel)
    assert 'HF_HUB_OFFLINE is set and the local Hub cache has no copy of timm-gcp/' in str(info.value)


def test_offline_error_end_to_end(tmp_path):
    """HF_HUB_OFFLINE=1 and an empty cache, as a user runs it: the error, well under 5 s after the imports."""
    code = (
        'import time, timm, timm_gcp\n'
        'start = time.perf_counter()\n'
        'try:\n'
        f'    timm.create_model({TAG!r}, pretrained=True)\n'
        'except Exception as e:\n'
        '    print(type(e).__name__, time.perf_counter() - start)\n'
        '    print(e)\n')
    env = dict(os.environ, HF_HUB_OFFLINE='1', HF_HOME=str(tmp_path / 'hf'))
    env.pop('HF_HUB_CACHE', None)
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120).stdout
    kind, seconds = out.splitlines()[0].split()
    assert kind == 'WeightsUnavailableError' and float(seconds) < 5
    assert convert_command(RELEASES[TAG]) in out


def test_mindspore_file_in_pretrained_cfg_overlay_names_the_converter(tmp_path):
    model = timm.create_model('ms_resnet18_isqrt', gcp_dim=8)
    ckpt = write_mindspore_checkpoint(tmp_path / 'R18.ckpt', mindspore_layout(model.state_dict(), basic_block=True))
    for name, expected in (('ms_resnet18_isqrt.tpami_in1k', 'ms_resnet18_isqrt.tpami_in1k'),
                           ('resnet18_isqrt', 'ms_resnet18_isqrt')):  # the architecture with the MindSpore numerics
        with pytest.raises(WeightsUnavailableError) as info:
            timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(ckpt)))
        assert f'{ckpt}: a MindSpore checkpoint, which timm cannot load' in str(info.value)
        assert f'timm-gcp convert {ckpt} --model {expected} --out {expected}' in str(info.value)
    with pytest.raises(WeightsUnavailableError, match=r'nope\.pth: no such file'):
        timm.create_model(
            'resnet18_isqrt', pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / 'nope.pth')))
    # a PyTorch file still loads through timm's loader
    path = tmp_path / 'r18.pth'
    torch.save(model.state_dict(), path)
    loaded = timm.create_model(
        'resnet18_isqrt', gcp_dim=8, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    torch.testing.assert_close(loaded.head.fc.weight, model.head.fc.weight)


# the architectures whose default tag (the cfg timm builds a bare name with) is a release
DEFAULT_RELEASES = sorted({a for a in (n.split('.')[0] for n in RELEASES)
                           if f'{a}.{timm.models.get_pretrained_cfg(a).tag}' in RELEASES})


def test_default_releases_cover_every_family():
    assert {'mobilenetv2_100_isqrt_d256', 'shufflenetv2_100_isqrt_d256', 'resnet50_isqrt', 'vit_dropcov_small',
            'ms_resnet18_isqrt'} <= set(DEFAULT_RELEASES)


@pytest.mark.parametrize('arch', DEFAULT_RELEASES)
def test_bare_name_loads_what_its_default_tag_does(no_hub, arch):
    """timm builds a bare name with its default tag's cfg: where that tag is a release, the bare name loads the
    release too, and fails as the tag does while it cannot be had (never the trunk alone, or nothing)."""
    tag = timm.models.get_pretrained_cfg(arch).tag
    with pytest.raises(WeightsUnavailableError) as bare:
        timm.create_model(arch, pretrained=True)
    with pytest.raises(WeightsUnavailableError) as tagged:
        timm.create_model(f'{arch}.{tag}', pretrained=True)
    assert str(bare.value) == str(tagged.value)
    assert str(bare.value).startswith(f'{arch}.{tag}: no pretrained weights')
