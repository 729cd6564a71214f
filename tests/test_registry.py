"""The GCP models in timm's registry (`timm_gcp.models.registry`) and their sources (`timm_gcp.models.sources`)."""
import dataclasses

import pytest
import timm
from timm.models import get_pretrained_cfg, split_model_name_tag

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp.models.gcp_backbone import PRESETS
from timm_gcp.models.registry import GCP_MODULES, UnknownModelError, baseline_name, generic_names, is_gcp_model, \
    list_pretrained, model_names, preset_names, \
    registered_names, release_names
from timm_gcp.models.releases import RELEASES, release_cfgs
from timm_gcp.models.sources import PAPERS, REPOS, pretrained_fields

# architectures without weights, listed by their bare name
UNTAGGED = sorted([
    'resnet18_isqrt', 'resnet34_isqrt', 'resnet101_isqrt', 'resnet152_isqrt', 'resnet152_isqrt_d256',
    'resnet18_dropcov', 'resnet152_dropcov',
    'resnet50_mpncov', 'resnet50_mpncov_d256', 'resnet101_mpncov', 'resnet101_mpncov_d256',
    'deit_tiny_patch16_224_isqrt', 'deit_small_patch16_224_isqrt', 'deit_base_patch16_224_isqrt',
    'deit_tiny_patch16_224_dropcov', 'deit_small_patch16_224_dropcov', 'deit_base_patch16_224_dropcov',
    'vit_sot_tiny', 'vit_sot_small', 'vit_sot_base',
])


def test_gcp_modules_are_the_model_families():
    assert GCP_MODULES == ('gcp_resnet', 'gcp_vit', 'gcp_backbone', 'gcp_shufflenet')
    assert set(GCP_MODULES) <= set(timm.list_modules())


def test_registered_names():
    names = registered_names()
    assert len(names) == len(set(names))
    assert sorted(model_names()) == sorted(list(RELEASES) + UNTAGGED)
    assert generic_names() == ['gcp_isqrt', 'gcp_dropcov', 'gcp_mpncov']
    # the presets: their tags are their backbones' (tests/test_gcp_backbone.py), no weights of their own
    presets = [n for n in names if split_model_name_tag(n)[0] in preset_names()]
    assert sorted(presets + model_names() + generic_names()) == sorted(names)
    assert {split_model_name_tag(n)[0] for n in names} == {
        n for module in GCP_MODULES for n in timm.list_models(module=module)}
    # the names before the ms_ architectures still load (test_gcp_resnet.py) but are not registered names
    assert not {'resnet18_isqrt.tpami_in1k', 'resnet50_dropcov.tpami_in1k'} & set(names)


def test_registry_and_releases_agree_both_ways():
    """Every release record is a registered tag whose cfg is generated from it: its paper, the code its weights come
    from, and its Hub repo once published; timm lists as pretrained exactly the published ones."""
    names = release_names()
    assert len(names) == len(set(names)) and set(names) == set(RELEASES)
    for name, release in RELEASES.items():
        cfg = get_pretrained_cfg(name)
        assert release.hub_id == f'timm-gcp/{name}', name
        assert cfg.hf_hub_id == (release.hub_id if release.published else None) and cfg.url is None, name
        assert timm.models.is_model_pretrained(name) == release.published, name
        expected = pretrained_fields(release.papers[0], release.code)
        assert (cfg.paper_ids, cfg.paper_name, cfg.origin_url, cfg.license) == (
            expected['paper_ids'], expected['paper_name'], expected['origin_url'], expected['license']), name
    for name in UNTAGGED:
        cfg = get_pretrained_cfg(name)
        assert cfg.hf_hub_id is None and cfg.url is None and cfg.file is None, name


def test_timm_lists_no_unpublished_release():
    """timm.list_pretrained() / list_models(pretrained=True) name no tag whose weights are not on the Hub."""
    unpublished = {name for name, rel in RELEASES.items() if not rel.published}
    assert not unpublished & set(timm.list_pretrained())
    assert not unpublished & set(timm.list_models(pretrained=True, include_tags=True))
    assert not timm.list_pretrained('resnet50_isqrt*') and not timm.list_pretrained('vit_dropcov*')


def test_release_cfgs_name_the_hub_repo_of_published_releases_only(monkeypatch):
    first, second = 'resnet50_isqrt.gcp_in1k', 'resnet50_isqrt.gcp_lradju_in1k'
    cfgs = release_cfgs(dict, 'resnet50_isqrt')
    assert list(cfgs) == [first, second] and not any('hf_hub_id' in cfg for cfg in cfgs.values())
    assert timm.models.generate_default_cfgs(cfgs)['resnet50_isqrt'].tags[0] == 'gcp_in1k'
    monkeypatch.setitem(RELEASES, second, dataclasses.replace(RELEASES[second], published=True))
    cfgs = release_cfgs(dict, 'resnet50_isqrt')
    assert cfgs[second]['hf_hub_id'] == f'timm-gcp/{second}' and 'hf_hub_id' not in cfgs[first]
    # the default tag (the bare name's) is one that loads
    assert timm.models.generate_default_cfgs(cfgs)['resnet50_isqrt'].tags[0] == 'gcp_lradju_in1k'


def test_list_pretrained_says_what_loads(monkeypatch):
    """Presets' tags load their backbone's trunk weights; releases load the whole model once published."""
    loads = list_pretrained()
    assert set(loads.values()) <= {'trunk'} and not {n for n, rel in RELEASES.items() if not rel.published} & set(loads)
    assert loads['convnext_tiny_isqrt.fb_in22k'] == 'trunk' and loads['vit_small_patch16_224_dropcov.augreg_in21k'] == \
        'trunk'
    for name in loads:
        arch, tag = split_model_name_tag(name)
        assert f'{PRESETS[arch][0]}.{tag}' in timm.list_pretrained(), name
    assert {split_model_name_tag(n)[0] for n in loads} == set(PRESETS)  # every preset, no generic model
    assert set(list_pretrained('convnext_tiny_*')) == {n for n in loads if n.startswith('convnext_tiny_')}
    assert list_pretrained(kind='model') == {}
    tag = 'resnet50_isqrt_d256.gcp_in1k'
    monkeypatch.setitem(RELEASES, tag, dataclasses.replace(RELEASES[tag], published=True))
    assert list_pretrained(kind='model') == {tag: 'model'} and list_pretrained('resnet50*') == {tag: 'model'}
    with pytest.raises(ValueError, match=r"unknown kind 'weights', expected one of \('model', 'trunk'\)"):
        list_pretrained(kind='weights')


def test_unknown_names_are_named():
    for lookup in (baseline_name, is_gcp_model):
        with pytest.raises(UnknownModelError) as info:
            lookup('resnet50_isqrtt.gcp_in1k')
        assert isinstance(info.value, KeyError)
        assert str(info.value).startswith("unknown model 'resnet50_isqrtt.gcp_in1k': timm has no architecture "
                                          "'resnet50_isqrtt'")


def test_default_tag_is_the_first_release():
    """timm's default tag of an architecture (its bare name) is its first release in RELEASES (none is published)."""
    first = {}
    for name in RELEASES:
        first.setdefault(split_model_name_tag(name)[0], name)
    for arch, name in first.items():
        assert get_pretrained_cfg(arch).tag == split_model_name_tag(name)[1], arch


def test_release_cfgs_refuse_an_architecture_without_a_release():
    with pytest.raises(ValueError, match='no release of resnet18_isqrt in RELEASES'):
        release_cfgs(dict, 'resnet50_isqrt', 'resnet18_isqrt')


@pytest.mark.parametrize('name,ours', [
    ('resnet50_isqrt', True), ('ms_resnet50_isqrt.tpami_in1k', True), ('resnet50_isqrt_d256.fmpn_in1k', True),
    ('vit_sot_small', True), ('deit_small_patch16_224_dropcov', True),
    ('resnet50', False), ('resnet50.a1_in1k', False), ('deit_small_patch16_224', False),
])
def test_is_gcp_model(name, ours):
    assert is_gcp_model(name) is ours


def test_no_name_shadows_timm():
    """Our names are new: registering over a timm name would silently replace timm's model."""
    ours = {n for module in GCP_MODULES for n in timm.list_models(module=module)}
    for module in GCP_MODULES:
        assert set(timm.list_models(module=module)) <= ours
    timm_names = {
        name for module in timm.list_modules() if module not in GCP_MODULES
        for name in timm.list_models(module=module)
    }
    assert not ours & timm_names


# --- sources ----------------------------------------------------------------------------------------------

def test_papers_and_repos():
    assert {'mpncov', 'isqrt', 'gcp_opt', 'dropcov', 'tpami', 'sovit', 'sot'} == set(PAPERS)
    for key, paper in PAPERS.items():
        assert {'title', 'venue', 'url', 'paper_id', 'bibtex'} <= set(paper), key
        assert paper['title'] and paper['venue'], key
    assert PAPERS['mpncov']['bibtex'] == PAPERS['sovit']['bibtex'] == PAPERS['sot']['bibtex'] == ''
    assert PAPERS['isqrt']['paper_id'] == 'arXiv:1712.01034' and PAPERS['tpami']['paper_id'] == ''
    for name, repo in REPOS.items():
        assert repo.url == f'https://github.com/{name}' and repo.license in ('mit', 'unknown'), name


def test_pretrained_fields():
    assert pretrained_fields('isqrt', 'jiangtaoxie/fast-MPN-COV') == dict(
        paper_ids='arXiv:1712.01034', paper_name=PAPERS['isqrt']['title'],
        origin_url='https://github.com/jiangtaoxie/fast-MPN-COV', license='unknown')  # the weights': unstated
    assert pretrained_fields('tpami', 'Terror03/GCP-OPT')['paper_ids'] is None  # no paper id: None, as timm's cfgs


@pytest.mark.parametrize('name,paper,repo', [
    ('resnet50_isqrt_d256.fmpn_in1k', 'isqrt', 'jiangtaoxie/fast-MPN-COV'),
    ('resnet50_isqrt.gcp_in1k', 'gcp_opt', 'ZhangLi-CS/GCP_Optimization'),
    ('resnet50_dropcov.dc_in1k', 'dropcov', 'mingzeG/DropCov'),
    ('ms_resnet50_isqrt.tpami_in1k', 'tpami', 'Terror03/GCP-OPT'),
    ('ms_resnet18_dropcov.tpami_in1k', 'tpami', 'Sherry1945/Dropcov_mindspore'),
    ('resnet101_mpncov', 'mpncov', 'jiangtaoxie/MPN-COV'),
    ('deit_small_patch16_224_isqrt', 'sovit', 'jiangtaoxie/SoT'),
    ('vit_sot_small', 'sot', 'jiangtaoxie/SoT'),
    ('vit_dropcov_small.dc_in1k', 'dropcov', 'mingzeG/DropCov'),
])
def test_cfgs_name_their_paper_and_repository(name, paper, repo):
    cfg = get_pretrained_cfg(name)
    expected = pretrained_fields(paper, repo)
    assert (cfg.paper_ids, cfg.paper_name, cfg.origin_url, cfg.license) == (
        expected['paper_ids'], expected['paper_name'], expected['origin_url'], expected['license'])


def test_every_cfg_names_a_known_repository():
    urls = {repo.url for repo in REPOS.values()}
    for name in registered_names():
        cfg = get_pretrained_cfg(name)
        if cfg.origin_url is not None:  # no authors license their weights, whatever their code's license
            assert cfg.origin_url in urls and cfg.license == 'unknown', name
    for name, result in RELEASES.items():
        assert result.source in REPOS and set(result.papers) <= set(PAPERS), name


@pytest.mark.parametrize('name', preset_names() + ['mobilenetv2_100_isqrt', 'mobilenetv2_100_isqrt_d256'])
def test_preset_widths_fit_their_trunk(name):
    """No registered model needs gcp_expand (docs/architectures.md, "Head arguments"): the families' own files check
    theirs, the presets on timm backbones are checked here."""
    head = timm.create_model(name, device='meta').head
    assert head.global_pool.dim <= head.in_features, name
