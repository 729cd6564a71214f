"""Hub export, offline loading and publishing, without the network.

A hand-built Hugging Face cache (refs/main + snapshots/<sha>/, as `hf_hub_download` lays it out) with
HF_HUB_OFFLINE serves every published `arch.tag` through its registered `hf_hub_id`; timm's own
`test_model_load_pretrained` / `test_model_features_pretrained` run against it. Publishing runs with
the Hub client replaced by a fake that records what would be uploaded; what it publishes is a
MindSpore checkpoint converted into `ms_resnet18_isqrt.tpami_in1k`.
"""
import json
import os
import re
import shutil
from pathlib import Path

import huggingface_hub.constants
from huggingface_hub.errors import LocalEntryNotFoundError
import pytest
import safetensors.torch
import timm
import torch
from torch import nn

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp import cli
from timm_gcp.convert.converter import convert_checkpoint
from timm_gcp.export import folder
from timm_gcp.export.folder import HUB_FILES, export_for_hub
from timm_gcp.hub.cards import render_card
from timm_gcp.hub.publish import PublishError, publish
from timm_gcp.models.registry import release_names
from timm_gcp.models.releases import RELEASES

from tests.helpers import REPO
from tests.helpers.fake_hub import SHA, FakeHfApi
from tests.helpers.layouts import mindspore_layout, write_mindspore_checkpoint
from tests.helpers.timm_sources import is_non_std
from tests.helpers.weights import randomize

pytestmark = pytest.mark.filterwarnings('ignore::pytest.PytestUnknownMarkWarning')  # timm's test module's marks

# tags whose weights the loading tests export for real (small, and both kinds of MindSpore numerics)
EXPORTED = ('ms_resnet18_isqrt.tpami_in1k', 'ms_resnet50_isqrt.tpami_in1k')


def _random_model(name: str, **kwargs) -> nn.Module:
    return randomize(timm.create_model(name, **kwargs))


def _add_to_cache(cache: Path, repo_id: str, files: dict) -> None:
    """Lay files out as huggingface_hub's cache does: blobs are hard links, refs/main names the snapshot."""
    repo = cache / ('models--' + repo_id.replace('/', '--'))
    snapshot = repo / 'snapshots' / SHA
    snapshot.mkdir(parents=True)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text(SHA)
    for name, path in files.items():
        os.link(path, snapshot / name)


@pytest.fixture(scope='module')
def hub_cache(tmp_path_factory):
    """An offline Hub cache: real exports (config.json + weights) of EXPORTED, zero weights for every other tag.

    One weight file per architecture, hard-linked into the snapshot of each of its tags.
    """
    root = tmp_path_factory.mktemp('hub')
    cache, exports = root / 'cache', {}
    weights = {}
    for name in release_names():
        arch = name.split('.')[0]
        repo_id = RELEASES[name].hub_id
        if name in EXPORTED:
            model = _random_model(name)
            export_for_hub(model, root / name)
            exports[name] = model
            _add_to_cache(cache, repo_id, {f: root / name / f for f in ('config.json', 'model.safetensors')})
            continue
        if arch not in weights:
            meta = timm.create_model(arch, device='meta')
            weights[arch] = root / f'{arch}.safetensors'
            safetensors.torch.save_file({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in meta.state_dict().items()},
                                        weights[arch])
        _add_to_cache(cache, repo_id, {'model.safetensors': weights[arch]})
    yield cache, exports
    shutil.rmtree(root)  # about 2 GB of weights


@pytest.fixture
def offline(hub_cache, monkeypatch):
    cache, exports = hub_cache
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('HF_HUB_CACHE', str(cache))
    # huggingface_hub reads both variables at import time
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(cache))
    return exports


def _same_weights(a: nn.Module, b: nn.Module, skip=()) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        if not k.startswith(skip):
            torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


# --- export and local-dir ---------------------------------------------------------------------------------

def test_export_then_local_dir(tmp_path):
    source = _random_model('resnet18_dropcov', gcp_dim=16, num_classes=7)
    out = export_for_hub(source, tmp_path / 'export', card='# card\n', files={'provenance.json': '{}'})
    assert sorted(p.name for p in out.iterdir()) == sorted(HUB_FILES)
    config = json.loads((out / 'config.json').read_text())
    assert config['architecture'] == 'resnet18_dropcov' and config['num_classes'] == 7
    # num_classes at the root only: transformers' TimmWrapper passes it and then **model_args
    assert config['model_args'] == {'gcp_dim': 16, 'in_chans': 3, 'global_pool': 'gcp'}
    loaded = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    assert loaded.num_classes == 7
    _same_weights(loaded, source)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)


def test_export_is_atomic(tmp_path, monkeypatch):
    def broken_save(model, directory, **kwargs):
        (Path(directory) / 'model.safetensors').write_bytes(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(folder, 'save_for_hf', broken_save)
    with pytest.raises(OSError, match='disk full'):
        export_for_hub(timm.create_model('resnet18_isqrt', gcp_dim=8), tmp_path / 'export', card='x')
    assert list(tmp_path.iterdir()) == []


# --- the offline Hub cache --------------------------------------------------------------------------------

@pytest.mark.parametrize('name', EXPORTED)
def test_registry_names_and_hf_hub_names_load_offline(offline, name):
    """The tag, the untagged ms_ architecture (default tag), the Hub repo and the deprecated name: same model."""
    source = offline[name]
    repo_id = RELEASES[name].hub_id
    assert repo_id == f'timm-gcp/{name}'
    arch = name.split('.')[0]
    deprecated = f"{arch[len('ms_'):]}.tpami_in1k"
    x = torch.randn(1, 3, 64, 64)
    for model_name in (name, arch, f'hf-hub:{repo_id}', deprecated):
        if model_name == deprecated:
            with pytest.warns(FutureWarning, match=f'{deprecated} is now {name}'):
                model = timm.create_model(model_name, pretrained=True)
        else:
            model = timm.create_model(model_name, pretrained=True)
        model.eval()
        _same_weights(model, source)
        assert model.layer1[0].bn1.eps == 1e-4, model_name  # the MindSpore numerics came along
        assert type(model.conv1).__name__ == ('Conv2dSame' if 'resnet50' in name else 'Conv2d'), model_name
        with torch.no_grad():
            torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)


def test_pretrained_with_other_num_classes_and_in_chans(offline):
    source = offline['ms_resnet18_isqrt.tpami_in1k']
    model = timm.create_model('ms_resnet18_isqrt.tpami_in1k', pretrained=True, num_classes=10, in_chans=1)
    assert model.head.fc.out_features == 10 and model.conv1.in_channels == 1
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight.sum(dim=1, keepdim=True))
    _same_weights(model, source, skip=('conv1.', 'head.fc.'))
    assert not torch.equal(model.head.fc.weight[:10], source.head.fc.weight[:10])
    pooled = timm.create_model('hf-hub:timm-gcp/ms_resnet18_isqrt.tpami_in1k', pretrained=True, num_classes=0).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(pooled(x), source.forward_head(source.forward_features(x), pre_logits=True))


def test_features_only_pretrained(offline):
    source = offline['ms_resnet50_isqrt.tpami_in1k']
    features = timm.create_model('ms_resnet50_isqrt.tpami_in1k', pretrained=True, features_only=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = features(x)
        _, expected = source.forward_intermediates(x)
    assert [m.shape[1] for m in maps] == [64, 256, 512, 1024, 2048]
    for got, want in zip(maps, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_missing_cache_entry_fails_offline(offline):
    with pytest.raises(LocalEntryNotFoundError, match='cannot find the requested files in the local cache'):
        timm.create_model('hf-hub:timm-gcp/not_a_repo', pretrained=True)


def _features_tags():
    """timm's features test skips its non-standard names; once per architecture (the numerics are the arch's)."""
    seen, names = set(), []
    for name in release_names():
        arch = name.split('.')[0]
        if arch not in seen:
            seen.add(arch)
            names.append(name)
    return names


FEATURES_TAGS = frozenset(_features_tags())


@pytest.mark.parametrize('name', release_names())
def test_timm_load_pretrained(offline, timm_tm, name):
    timm_tm.test_model_load_pretrained(name, 1)
    if name in FEATURES_TAGS and not is_non_std(timm_tm, name):
        timm_tm.test_model_features_pretrained(name, 1)


# --- publish ----------------------------------------------------------------------------------------------

PUBLISHED = 'ms_resnet18_isqrt.tpami_in1k'
REPO_ID = f'timm-gcp/{PUBLISHED}'


@pytest.fixture(scope='module')
def converted_r18(tmp_path_factory):
    """ms_resnet18_isqrt.tpami_in1k converted (`timm-gcp convert`) from a MindSpore checkpoint (TPAMI'23 layout)."""
    root = tmp_path_factory.mktemp('publish')
    source = _random_model(PUBLISHED)
    checkpoint = write_mindspore_checkpoint(root / 'R18_fast_mpn.ckpt', mindspore_layout(source.state_dict(), True))
    report = convert_checkpoint(checkpoint, PUBLISHED, root / 'converted')
    assert report.source_format.startswith('MindSpore checkpoint') and report.model_args == {}
    return root / 'converted', source


def test_publish_uploads_export_and_card(tmp_path, fake_hub, converted_r18):
    src, source = converted_r18
    result = publish(src, REPO_ID)
    assert [c[0] for c in fake_hub.calls] == ['init', 'create_repo', 'upload_folder']
    assert fake_hub.calls[1][1] == dict(repo_id=REPO_ID, private=False, exist_ok=True)
    assert fake_hub.calls[2][1]['commit_message'] == f'Add {PUBLISHED} (timm-gcp)'
    files = fake_hub.uploads[REPO_ID]
    assert sorted(files) == sorted(HUB_FILES)
    # the card is rendered from the registry: the repository's model_cards/<name>.md is the same text
    card = files['README.md'].decode()
    assert card == render_card(PUBLISHED) == (REPO / 'model_cards' / f'{PUBLISHED}.md').read_text(encoding='utf-8')
    config = json.loads(files['config.json'])
    assert config['architecture'] == 'ms_resnet18_isqrt' and config['pretrained_cfg']['tag'] == 'tpami_in1k'
    # the numerics are the architecture's defaults: no settings to record
    assert config['model_args'] == dict(in_chans=3, global_pool='gcp') and config['num_classes'] == 1000
    assert 'file' not in config['pretrained_cfg'] and 'hf_hub_id' not in config['pretrained_cfg']
    assert not result.folder.exists()  # the temporary export is gone

    uploaded = tmp_path / 'uploaded'
    uploaded.mkdir()
    for name, data in files.items():
        (uploaded / name).write_bytes(data)
    model = timm.create_model(f'local-dir:{uploaded}', pretrained=True).eval()
    assert model.layer1[0].bn1.eps == 1e-4 and model.bn1.eps == 1e-5 and model.layer2[0].downsample[1].eps == 1e-5
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)

    # the dry run writes exactly the folder that was uploaded, and talks to no Hub
    fake_hub.calls.clear()
    staged = tmp_path / 'staged'
    publish(src, REPO_ID, dry_run=True, out=staged)
    assert fake_hub.calls == []
    assert {p.name: p.read_bytes() for p in staged.iterdir()} == files


def test_publish_refusals(tmp_path, fake_hub, converted_r18):
    src, _ = converted_r18
    for bad in ('ms_resnet18_isqrt.tpami_in1k', 'a/b/c', '/name'):
        with pytest.raises(PublishError, match=r'not a Hub repo id \(ORG/NAME\)'):
            publish(src, bad)
    for bad, rule in (('someone/resnet18 isqrt', "alphanumeric chars, '-', '_' or '.'"), ('some--one/x', '--')):
        with pytest.raises(PublishError, match=f"'{bad}': not a valid Hub repo id: .*{re.escape(rule)}"):
            publish(src, bad, dry_run=True, out=tmp_path / 'never')
        assert not (tmp_path / 'never').exists()
    # a release's own repo takes only that release's weights
    with pytest.raises(PublishError, match=r"timm-gcp/ms_resnet50_isqrt\.tpami_in1k is the Hub repo of the authors' "
                                           r"weights of ms_resnet50_isqrt\.tpami_in1k; .* holds the authors' weights "
                                           r"of ms_resnet18_isqrt\.tpami_in1k"):
        publish(src, 'timm-gcp/ms_resnet50_isqrt.tpami_in1k')
    plain = tmp_path / 'plain'  # no provenance: not the authors' weights
    export_for_hub(_random_model('ms_resnet18_isqrt'), plain)
    with pytest.raises(PublishError, match=r"holds weights that are not theirs"):
        publish(plain, REPO_ID)
    with pytest.raises(PublishError, match='--dry-run needs --out'):
        publish(src, REPO_ID, dry_run=True)
    # the release's weights with one of the ms_ numerics overridden: not what create_model(tag) computes
    other_eps = tmp_path / 'other_eps'
    export_for_hub(_random_model('ms_resnet18_isqrt', bn_eps=1e-5), other_eps,
                   files={'provenance.json': json.dumps({'authors_release': PUBLISHED})})
    with pytest.raises(PublishError, match=r'config\.json: these weights were converted with other model settings .*'
                                           r'bn_eps=1e-05, which ms_resnet18_isqrt\.tpami_in1k does not set'):
        publish(other_eps, REPO_ID)
    foreign = tmp_path / 'foreign'  # a timm model, not one of ours
    export_for_hub(timm.create_model('resnet18', num_classes=3), foreign)
    with pytest.raises(PublishError, match=r"architecture 'resnet18' is not a timm-gcp model"):
        publish(foreign, 'someone/resnet18.mine')
    truncated = tmp_path / 'truncated'  # a cut-off download: a one-line error, not safetensors' traceback
    shutil.copytree(src, truncated)
    (truncated / 'model.safetensors').write_bytes((src / 'model.safetensors').read_bytes()[:4])
    with pytest.raises(PublishError, match=r'truncated: does not load as ms_resnet18_isqrt: .*header'):
        publish(truncated, 'someone/x')
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(PublishError, match=r'empty: no config\.json \(expected a `timm-gcp convert` output folder\)'):
        publish(empty, 'someone/x')
    assert fake_hub.uploads == {}


def test_publish_authors_weights_elsewhere(tmp_path, fake_hub, converted_r18):
    """The authors' weights under another org keep the release's card, loading from that repo."""
    src, _ = converted_r18
    publish(src, f'someone/{PUBLISHED}')
    card = fake_hub.uploads[f'someone/{PUBLISHED}']['README.md'].decode()
    assert card == render_card(PUBLISHED, repo_id=f'someone/{PUBLISHED}')
    assert f"timm.create_model('hf-hub:someone/{PUBLISHED}', pretrained=True)" in card
    assert 'Trained on ImageNet-1k by the paper authors' in card


def test_publish_reports_upload_failure(fake_hub, converted_r18, monkeypatch):
    def refuse(self, **kwargs):
        raise ConnectionError('no route to huggingface.co')

    monkeypatch.setattr(FakeHfApi, 'upload_folder', refuse)
    with pytest.raises(PublishError, match=r'ms_resnet18_isqrt\.tpami_in1k: upload failed: ConnectionError: no route'):
        publish(converted_r18[0], REPO_ID)


def test_publish_cli_dry_run(tmp_path, capsys, fake_hub, converted_r18):
    src, _ = converted_r18
    out = tmp_path / 'staged'
    args = ['publish', str(src), '--repo-id', REPO_ID, '--dry-run', '--out', str(out)]
    rc = cli.main(args)
    assert rc == 0 and sorted(p.name for p in out.iterdir()) == sorted(HUB_FILES)
    assert f'would be uploaded to {REPO_ID}' in capsys.readouterr().out
    assert cli.main(args) == 1
    assert 'already exists (pass --overwrite' in capsys.readouterr().err
    # the card comes from the registry: there is no --card-dir any more
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*args, '--overwrite', '--card-dir', str(tmp_path)])
    assert exit_info.value.code == 2
    assert 'unrecognized arguments: --card-dir' in capsys.readouterr().err
    # an invalid repo id is refused before anything is staged, in a dry run too
    assert cli.main(['publish', str(src), '--repo-id', 'someone/resnet18 isqrt', '--dry-run',
                     '--out', str(tmp_path / 'invalid')]) == 2
    assert capsys.readouterr().err.startswith(
        "timm-gcp publish: error: 'someone/resnet18 isqrt': not a valid Hub repo id: Repo id must use alphanumeric "
        "chars, '-', '_' or '.'")
    assert not (tmp_path / 'invalid').exists()
    assert fake_hub.calls == []
