"""GCP heads on any timm backbone (`gcp_isqrt` / `gcp_dropcov` / `gcp_mpncov`, the presets) and GCP_Optimization's
MobileNetV2 / ShuffleNetV2 against an independent reference built from the authors' architecture description.

timm's own test_models.py runs on every preset in tests/test_timm_suite.py; these tests use timm's tiny
`test_*` models (and a two-stage Swin) as backbones, so that each trains a step in well under a second.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
import safetensors.torch
import timm
import torch
import torchvision
from torch import nn

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp.convert.converter import convert_checkpoint
from timm_gcp.export.folder import export_for_hub
from timm_gcp.layers import covariance, isqrt, triu_vec
from timm_gcp.models import gcp_backbone, gcp_shufflenet
from timm_gcp.models._head import split_prefix_tokens
from timm_gcp.models.gcp_backbone import PRESET_BACKBONES, BackboneError, GCPBackboneModel, GCPTokenModel, \
    probe_backbone
from timm_gcp.models.registry import baseline_name
from timm_gcp.models.releases import WeightsUnavailableError

from tests.helpers.fake_hub import SHA
from tests.helpers.gcp_reference import gcp_logits
from tests.helpers.images import write_image_folder
from tests.helpers.timm_sources import SCRIPTS_DIR, needs_scripts
from tests.helpers.weights import randomize

SWIN = dict(backbone='swin_tiny_patch4_window7_224', embed_dim=16, depths=(1, 1), num_heads=(1, 1), img_size=64)
# a CNN (NCHW), an NHWC model and a ViT (tokens, one class token)
BACKBONES = {
    'cnn': (dict(backbone='test_convnext'), 64),
    'nhwc': (SWIN, 64),
    'vit': (dict(backbone='test_vit'), 160),
}


def _model(name: str, kind: str, **kwargs) -> nn.Module:
    args, _ = BACKBONES[kind]
    return randomize(timm.create_model(name, **dict(args, gcp_dim=8, num_classes=5, **kwargs)))


def _input(kind: str, b: int = 2) -> torch.Tensor:
    return torch.randn(b, 3, BACKBONES[kind][1], BACKBONES[kind][1], generator=torch.Generator().manual_seed(0))


# --- the generic models ---------------------------------------------------------------------------------

@pytest.mark.parametrize('kind', BACKBONES)
@pytest.mark.parametrize('name', ['gcp_isqrt', 'gcp_dropcov'])
def test_generic_model_trains_a_step_exports_and_loads_back(tmp_path, name, kind):
    model = _model(name, kind)
    x, target = _input(kind, 4), torch.tensor([0, 1, 2, 3])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    loss = nn.functional.cross_entropy(model(x), target)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()
    changed = {k for k, v in model.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])}
    assert any(k.startswith('backbone.') for k in changed) and 'head.fc.weight' in changed

    model.eval()
    out = export_for_hub(model, tmp_path / 'export')
    config = json.loads((out / 'config.json').read_text())
    assert config['architecture'] == name and config['model_args']['backbone'] == BACKBONES[kind][0]['backbone']
    loaded = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_generic_head_is_reduce_cov_isqrt_triu_fc_on_the_backbone_features():
    model = _model('gcp_isqrt', 'cnn').eval()
    trunk = model.backbone
    x = _input('cnn')
    with torch.no_grad():
        features = trunk.forward_head(trunk.forward_features(x), pre_logits=True)
        rep = triu_vec(isqrt(covariance(model.head.global_pool.reduce(features)), 5))
        torch.testing.assert_close(model(x), model.head.fc(rep))
    assert isinstance(model.head.global_pool.reduce.bn.act, nn.ReLU)


def test_token_head_pools_the_patch_tokens_only():
    model = _model('gcp_isqrt', 'vit').eval()
    assert isinstance(model, GCPTokenModel) and model.num_prefix_tokens == 1
    x = _input('vit')
    with torch.no_grad():
        prefix, patches = model.forward_features(x)
        assert prefix.shape[1] == 1 and patches.shape[1] == (160 // 16) ** 2
        maps = patches.transpose(1, 2).unsqueeze(-1)
        rep = triu_vec(isqrt(covariance(model.head.global_pool.reduce(maps)), 5))
        torch.testing.assert_close(model(x), model.head.fc(rep))
        # the class token does not reach the covariance
        changed = torch.cat([prefix + 1.0, patches], dim=1)
        torch.testing.assert_close(model.forward_head(split_prefix_tokens(changed, model.num_prefix_tokens)), model(x))
    assert model.num_features == model.head_hidden_size == 8 * 9 // 2


def test_token_backbone_set_input_size_and_dynamic_img_size():
    """timm's ViT resizing reaches the backbone: the head pools the new grid's patch tokens."""
    model = _model('gcp_isqrt', 'vit').eval()
    model.set_input_size((96, 96))
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        prefix, patches = model.forward_features(x)
        assert patches.shape[1] == (96 // 16) ** 2 and model(x).shape == (1, 5)
    dynamic = _model('gcp_isqrt', 'vit', dynamic_img_size=True).eval()
    with torch.no_grad():
        assert dynamic.forward_features(torch.randn(1, 3, 96, 128))[1].shape[1] == 6 * 8
    # a map model has none, as timm's CNNs (timm's suite resizes what has one)
    assert not hasattr(_model('gcp_isqrt', 'cnn'), 'set_input_size')


def test_nhwc_backbone_is_pooled_over_its_map():
    model = _model('gcp_isqrt', 'nhwc').eval()
    assert isinstance(model, GCPBackboneModel) and model.output_fmt == 'NHWC'
    x = _input('nhwc')
    with torch.no_grad():
        maps = model.forward_features(x)
        assert maps.shape[-1] == model.num_features
        rep = triu_vec(isqrt(covariance(model.head.global_pool.reduce(maps.permute(0, 3, 1, 2))), 5))
        torch.testing.assert_close(model(x), model.head.fc(rep))


def test_cfg_is_the_backbone_tag_data_config():
    model = timm.create_model('gcp_dropcov', backbone='test_vit.r160_in1k', num_classes=3, gcp_dim=16)
    backbone = timm.models.get_pretrained_cfg('test_vit.r160_in1k')
    cfg = model.pretrained_cfg
    for key in ('input_size', 'mean', 'std', 'interpolation', 'crop_pct'):
        assert cfg[key] == getattr(backbone, key), key
    assert cfg['first_conv'] == f'backbone.{backbone.first_conv}' and cfg['classifier'] == 'head.fc'
    assert not cfg.get('hf_hub_id') and 'untrained' in cfg['notes'][0]
    assert timm.data.resolve_data_config({}, model=model)['input_size'] == backbone.input_size


@pytest.fixture
def trunk_hub(tmp_path, monkeypatch):
    """An offline Hub cache holding timm/test_vit.r160_in1k's weights (random, as a timm model saves them)."""
    source = randomize(timm.create_model('test_vit.r160_in1k'))
    repo = tmp_path / 'cache' / 'models--timm--test_vit.r160_in1k'
    (repo / 'snapshots' / SHA).mkdir(parents=True)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text(SHA)
    safetensors.torch.save_file(source.state_dict(), repo / 'snapshots' / SHA / 'model.safetensors')
    for name, value in (('HF_HUB_OFFLINE', True), ('HF_HUB_CACHE', str(tmp_path / 'cache'))):
        monkeypatch.setenv(name, str(int(value)) if value is True else value)
        monkeypatch.setattr(huggingface_hub.constants, name, value)
    return source


def test_pretrained_loads_the_backbone_weights_and_a_fresh_head(trunk_hub):
    model = timm.create_model('gcp_isqrt', backbone='test_vit.r160_in1k', pretrained=True, num_classes=7, gcp_dim=16)
    trunk = {k: v for k, v in trunk_hub.state_dict().items() if not k.startswith('head.')}
    assert set(trunk) == set(model.backbone.state_dict())
    for k, v in trunk.items():
        torch.testing.assert_close(model.backbone.state_dict()[k], v, rtol=0, atol=0, msg=k)
    assert model.head.fc.out_features == 7


def test_output_stride_keeps_a_larger_map():
    plain = timm.create_model('gcp_isqrt', backbone='test_convnext', num_classes=0, gcp_dim=16)
    dilated = timm.create_model('gcp_isqrt', backbone='test_convnext', num_classes=0, output_stride=16, gcp_dim=16)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert dilated.forward_features(x).shape[-1] == 2 * plain.forward_features(x).shape[-1]
    assert dilated.head.global_pool.min_input == dilated.min_input_size < plain.min_input_size


# --- errors, all before any weights are built or loaded --------------------------------------------------

@pytest.mark.parametrize('kwargs, match', [
    (dict(backbone='convnext_tinny'), "unknown timm backbone 'convnext_tinny'; close matches: convnext_tiny"),
    (dict(backbone='resnet18.no_such_tag'), "no pretrained tag 'no_such_tag'; its tags: .*a1_in1k"),
    (dict(backbone='resnet50_isqrt'), 'GCP head of its own'),
    (dict(backbone='efficientvit_b0'), "cannot be built without its pooling .*Cannot disable pooling"),
    (dict(backbone='crossvit_tiny_240'), 'cannot be built without its pooling'),
    (dict(backbone='test_vit', output_stride=16), "'test_vit' does not take output_stride"),
    (dict(backbone='swin_tiny_patch4_window7_224', output_stride=16), 'does not take output_stride'),
    # ConvNeXt asserts its output_stride without a message; the error names the argument and what it takes
    (dict(backbone='test_convnext', output_stride=4),
     r"'test_convnext' cannot be built with output_stride=4 \(AssertionError with no message\); "
     r"it takes output_stride 8 or 16 or 32"),
    (dict(backbone='test_convnext', img_size=96), r"'test_convnext' does not take img_size=96; leave img_size unset"),
    (dict(backbone='swin_tiny_patch4_window7_224', img_size=32), 'gives a 1x1 map at its 32x32 px input'),
    # VGG's pre-logits are its fc6 / fc7 as 7x7 convs: one position at 224 px
    (dict(backbone='vgg11'), "'vgg11' gives a 1x1 map at its 224x224 px input"),
    # PiT's head gets its class token only, VOLO's its patch tokens and a class token it does not count
    (dict(backbone='pit_ti_224'),
     r"'pit_ti_224': its unpooled features are \(1, 1, 256\) tokens at 224x224 px, 0 of them .*49-position map"),
    (dict(backbone='volo_d1_224'),
     r"'volo_d1_224': its unpooled features are \(1, 197, 384\) tokens .*196-position map"),
    (dict(backbone='hf-hub:timm/resnet18'), r"backbone='hf-hub:timm/resnet18': a Hub repo or a local folder is not "
                                            r"a backbone name; give the timm architecture"),
    (dict(backbone='local-dir:/tmp/x'), "backbone='local-dir:/tmp/x': a Hub repo or a local folder"),
])
def test_bad_backbone_named_before_weights_load(kwargs, match, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(BackboneError, match=match):
        timm.create_model('gcp_isqrt', pretrained=True, **kwargs)


@pytest.mark.parametrize('backbone, min_side', [('test_convnext', 64), ('test_resnet', 33)])
def test_smallest_input_is_the_backbone_own(backbone, min_side):
    """ConvNeXt floors at every stage (a 1x1 map below 64 px), ResNet rounds up (33 px); both reduce 32x."""
    model = timm.create_model('gcp_isqrt', backbone=backbone, gcp_dim=4, num_classes=2).eval()
    trunk = model.backbone
    with torch.no_grad():
        for side, positions in ((min_side - 1, 1), (min_side, 4)):
            features = trunk.forward_features(torch.randn(1, 3, side, side))
            assert features.shape[-2] * features.shape[-1] == positions, side
        with pytest.raises(ValueError, match=f'input {min_side - 1}x{min_side - 1} px is too small for backbone '
                                             f"'{backbone}'.* at least {min_side} px"):
            model(torch.randn(1, 3, min_side - 1, min_side - 1))
        assert model(torch.randn(1, 3, min_side, min_side)).shape == (1, 2)
        assert model(torch.randn(1, 3, min_side - 1, min_side)).shape == (1, 2)  # a 1x2 map pools
        # the head's own error (a one-position map given to forward_head) names the same smallest input
        with pytest.raises(ValueError, match=f'1x1 feature map .* at least {min_side} px'):
            model.forward_head(trunk.forward_features(torch.randn(1, 3, min_side - 1, min_side - 1)))


def test_local_dir_backbone_names_its_architecture_and_the_trunk_load(tmp_path):
    """A `local-dir:` trunk (a save_for_hf folder) is refused naming its architecture; the advised line loads it."""
    trunk = randomize(timm.create_model('test_convnext', num_classes=0, global_pool=''))
    timm.models.save_for_hf(trunk, tmp_path / 'trunk', safe_serialization=True)
    source = f'local-dir:{tmp_path / "trunk"}'
    with pytest.raises(BackboneError, match=r"give the timm architecture it holds \(backbone='test_convnext', from its "
                                            r"config\.json\)(.|\n)*model\.backbone\.load_state_dict"):
        timm.create_model('gcp_isqrt', backbone=source)
    model = timm.create_model('gcp_isqrt', backbone='test_convnext', gcp_dim=8)
    model.backbone.load_state_dict(
        timm.create_model(source, pretrained=True, num_classes=0, global_pool='').state_dict())
    for k, v in trunk.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[k], v, rtol=0, atol=0, msg=k)


@pytest.mark.parametrize('name, backbone, match', [
    ('gcp_isqrt.no_such_tag', 'resnet18', "gcp_isqrt has no tag 'no_such_tag': .* backbone 'resnet18': a1_in1k"),
    ('gcp_dropcov.a1_in1k', 'resnet18.a2_in1k',
     r"'gcp_dropcov\.a1_in1k' and backbone='resnet18\.a2_in1k' name two trunk tags; give one"),
])
def test_generic_model_tag_is_a_trunk_tag(name, backbone, match, monkeypatch):
    """A model tag names the trunk's weights: never ignored, never overriding the tag `backbone=` names."""
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(BackboneError, match=match):
        timm.create_model(name, backbone=backbone, pretrained=True)
    model = timm.create_model('gcp_isqrt.a1_in1k', backbone='resnet18', device='meta')
    assert model.pretrained_cfg['notes'][0].startswith('Trunk weights: timm resnet18.a1_in1k ')


@pytest.mark.parametrize('name, match', [
    ('mobilenetv2_100_isqrt.ra_in1k',
     "mobilenetv2_100_isqrt has no tag 'ra_in1k'; its tags: gcp_in1k, gcp_lradju_in1k$"),
    ('mobilenetv2_100_isqrt_d256.bogus', "mobilenetv2_100_isqrt_d256 has no tag 'bogus'; its tags: gcp_in1k, "),
    ('convnext_tiny_isqrt.bogus', "convnext_tiny_isqrt has no tag 'bogus'; its tags: in12k_ft_in1k, .*fb_in1k"),
])
def test_model_tag_is_one_of_its_own(name, match):
    """A model with tags of its own names those (the MobileNetV2's are its releases, not its trunk's)."""
    with pytest.raises(BackboneError, match=match):
        timm.create_model(name, device='meta')


def test_missing_backbone_is_a_type_error():
    with pytest.raises(TypeError, match="gcp_isqrt needs backbone=<timm model name>"):
        timm.create_model('gcp_isqrt')


def test_probe_runs_on_the_meta_device_and_is_remembered(monkeypatch):
    calls = []
    real = timm.create_model
    monkeypatch.setattr(timm, 'create_model', lambda *a, **k: calls.append(k) or real(*a, **k))
    layout = probe_backbone('test_efficientnet', 3, drop_path_rate=0.05)
    again = probe_backbone('test_efficientnet', 3, drop_path_rate=0.05)
    assert layout is again and len(calls) == 1
    assert layout.input_fmt == 'NCHW' and layout.reduction == 32


def test_pretrained_trunk_missing_offline_names_the_repo(tmp_path, monkeypatch):
    """Offline, with no cached trunk weights: one message naming the trunk's Hub repo and how to fetch it."""
    for name, value in (('HF_HUB_OFFLINE', True), ('HF_HUB_CACHE', str(tmp_path / 'empty'))):
        monkeypatch.setattr(huggingface_hub.constants, name, value)
    for name, kwargs, repo in (
            ('gcp_isqrt', dict(backbone='test_vit.r160_in1k'), 'timm/test_vit.r160_in1k'),
            ('efficientnet_b0_isqrt.ra4_e3600_r224_in1k', {}, 'timm/efficientnet_b0.ra4_e3600_r224_in1k')):
        with pytest.raises(WeightsUnavailableError,
                           match=f'HF_HUB_OFFLINE is set and the local Hub cache has no copy of {repo} '
                                 r"(.|\n)*timm\.create_model\('"):
            timm.create_model(name, pretrained=True, **kwargs)


# --- whole-model weights of another model ----------------------------------------------------------------

def _save(model: nn.Module, path: Path) -> Path:
    safetensors.torch.save_file(model.state_dict(), path)
    return path


@pytest.mark.parametrize('source, source_args, target, target_args, family', [
    ('resnet18_isqrt', dict(gcp_dim=8), 'gcp_isqrt', dict(backbone='resnet18'), 'a GCP ResNet'),
    ('gcp_isqrt', dict(backbone='resnet18', gcp_dim=8), 'resnet18_isqrt', {}, 'a GCP head on a timm backbone'),
    ('test_convnext', {}, 'gcp_isqrt', dict(backbone='test_convnext'), 'a model without a GCP head'),
])
def test_whole_model_file_of_another_family_is_named(tmp_path, source, source_args, target, target_args, family):
    """A GCP ResNet's weights into gcp_isqrt on resnet18 (and back) fail naming the family they belong to."""
    src = _save(timm.create_model(source, **source_args), tmp_path / 'model.safetensors')
    with pytest.raises(ValueError, match=f'\nthe checkpoint is the whole of {family}.*not of '
                                         r"(.|\n)*missing: (\S+, ){4}\S+ \(\d+ more\)"):
        timm.create_model(target, pretrained=True, gcp_dim=8, pretrained_cfg_overlay=dict(file=str(src)),
                          **target_args)


def test_whole_model_file_keeps_the_trunk_cfg(tmp_path):
    """A generic model's own file: the data config is the trunk's (as without the file), and in_chans=1 adapts
    the first conv as timm does for the GCP ResNets."""
    args = dict(backbone='test_convnext', gcp_dim=8)
    source = randomize(timm.create_model('gcp_isqrt', **args))
    src = _save(source, tmp_path / 'model.safetensors')
    model = timm.create_model('gcp_isqrt', pretrained=True, pretrained_cfg_overlay=dict(file=str(src)), **args)
    assert timm.data.resolve_data_config(model=model) == \
        timm.data.resolve_data_config(model=timm.create_model('gcp_isqrt', **args))
    assert model.pretrained_cfg['mean'] == timm.models.get_pretrained_cfg('test_convnext').mean
    gray = timm.create_model('gcp_isqrt', pretrained=True, in_chans=1, pretrained_cfg_overlay=dict(file=str(src)),
                             **args)
    torch.testing.assert_close(gray.backbone.stem[0].weight, source.backbone.stem[0].weight.sum(1, keepdim=True))
    torch.testing.assert_close(gray.head.fc.weight, source.head.fc.weight)


def test_export_file_of_another_model_is_named_before_building(tmp_path, monkeypatch):
    """`file=` inside an export folder: its config.json names the model, before any weights are created."""
    out = export_for_hub(timm.create_model('gcp_isqrt', backbone='test_convnext', gcp_dim=8).eval(), tmp_path / 'e')
    built, real = [], gcp_backbone.build_model_with_cfg
    monkeypatch.setattr(gcp_backbone, 'build_model_with_cfg', lambda *a, **k: built.append(a) or real(*a, **k))
    with pytest.raises(BackboneError, match="model.safetensors holds the weights of gcp_isqrt on backbone "
                                            "'test_convnext' .*not of gcp_isqrt on backbone 'test_resnet': "
                                            f"load the whole export with .*'local-dir:{out}'"):
        timm.create_model('gcp_isqrt', backbone='test_resnet', pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(out / 'model.safetensors')))
    assert not built
    timm.create_model('gcp_isqrt', backbone='test_convnext', gcp_dim=8, pretrained=True,
                      pretrained_cfg_overlay=dict(file=str(out / 'model.safetensors')))
    assert built


@pytest.mark.parametrize('name, backbone, match', [
    ('convnext_tiny_isqrt', 'resnet18', "convnext_tiny_isqrt is timm convnext_tiny with a GCP head and takes no "
                                        r"backbone='resnet18'; .*"
                                        r"timm\.create_model\('gcp_isqrt', backbone='resnet18'\)"),
    ('convnext_tiny_dropcov', 'resnet18.a1_in1k', r"timm\.create_model\('gcp_dropcov', backbone='resnet18.a1_in1k'\)"),
    ('convnext_tiny_isqrt', 'convnext_tiny.fb_in1k', r"takes its trunk's tag from the model tag, not from "
                                                     r"backbone='convnext_tiny.fb_in1k': "
                                                     r"timm\.create_model\('convnext_tiny_isqrt\.fb_in1k'\)"),
    ('mobilenetv2_100_isqrt', 'resnet18', 'mobilenetv2_100_isqrt is timm mobilenetv2_100 with a GCP head'),
    ('mobilenetv2_100_isqrt_d256', 'mobilenetv2_100.ra_in1k', 'takes no backbone='),
])
def test_preset_refuses_another_backbone(name, backbone, match, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(BackboneError, match=match):
        timm.create_model(name, backbone=backbone, pretrained=True)


def test_preset_takes_its_own_untagged_backbone():
    """What an export's or a script's arguments may repeat: the preset's own backbone, its default tag."""
    model = timm.create_model('convnext_tiny_isqrt', backbone='convnext_tiny', device='meta')
    assert type(model.backbone).__name__ == 'ConvNeXt' and model.pretrained_cfg['tag'] == \
        timm.create_model('convnext_tiny_isqrt', device='meta').pretrained_cfg['tag']


# --- presets --------------------------------------------------------------------------------------------

def test_presets_come_from_one_list_with_the_backbone_tags():
    assert len(PRESET_BACKBONES) >= 8
    for backbone in PRESET_BACKBONES:
        tags = {n.split('.', 1)[1] for n in timm.list_pretrained(f'{backbone}.*')}
        for method in ('isqrt', 'dropcov'):
            name = f'{backbone}_{method}'
            assert timm.is_model(name) and baseline_name(name) == backbone
            ours = {n.split('.', 1)[1] for n in timm.list_models(name, include_tags=True) if '.' in n}
            assert ours == tags, name


def test_preset_tag_names_the_trunk_weights(monkeypatch):
    seen = {}
    real = timm.create_model

    def spy(name, *args, **kwargs):
        if 'pretrained' in kwargs:  # the trunk itself, not the meta-device probe
            seen['trunk'] = (name, kwargs['pretrained'])
        return real(name, *args, **kwargs)

    monkeypatch.setattr('timm_gcp.models.gcp_backbone.timm.create_model', spy)
    model = real('efficientnet_b0_isqrt.ra4_e3600_r224_in1k', device='meta')
    assert seen['trunk'] == ('efficientnet_b0.ra4_e3600_r224_in1k', False)
    assert model.pretrained_cfg['tag'] == 'ra4_e3600_r224_in1k'
    assert model.pretrained_cfg['mean'] == timm.models.get_pretrained_cfg('efficientnet_b0.ra4_e3600_r224_in1k').mean


# --- GCP_Optimization's MobileNetV2 and ShuffleNetV2 ------------------------------------------------------

def _authors_mobilenetv2(d: int) -> nn.Module:
    """GCP_Optimization's MobileNetV2_MPNCOV: torchvision's MobileNetV2 features, dimension_reduction, classifier."""
    with torch.random.fork_rng():  # the initialization is part of the test's input: the same every run
        torch.manual_seed(1)
        model = nn.Module()
        model.features = torchvision.models.mobilenet_v2().features
        model.dimension_reduction = nn.Sequential(nn.Conv2d(1280, d, 1, bias=False), nn.BatchNorm2d(d), nn.ReLU6())
        model.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(d * (d + 1) // 2, 1000))
    return randomize(model, seed=1).eval()


def _authors_shufflenetv2() -> nn.Module:
    """GCP_Optimization's ShuffleNetV2_MPNCOV x1.0: torchvision's trunk, dimension_reduction (ReLU6), fc."""
    with torch.random.fork_rng():
        torch.manual_seed(2)
        model = torchvision.models.shufflenet_v2_x1_0()
        model.dimension_reduction = nn.Sequential(nn.Conv2d(1024, 256, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU6())
        model.fc = nn.Linear(32896, 1000)
    return randomize(model, seed=2).eval()


def _save_authors_checkpoint(model: nn.Module, path: Path) -> Path:
    """As GCP_Optimization's training saves it: {'state_dict': DataParallel's `module.`-prefixed keys, ...}."""
    state_dict = {f'module.{k}': v for k, v in model.state_dict().items()}
    torch.save({'epoch': 100, 'arch': 'authors', 'state_dict': state_dict,
                'best_prec1': 0.0}, path)
    return path


def _shufflenet_trunk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.conv5(model.stage4(model.stage3(model.stage2(model.maxpool(model.conv1(x))))))


@pytest.mark.parametrize('name, d', [('mobilenetv2_100_isqrt_d256.gcp_in1k', 256),
                                     ('mobilenetv2_100_isqrt.gcp_in1k', 128),
                                     ('shufflenetv2_100_isqrt_d256.gcp_lrfast_in1k', 256)])
def test_authors_checkpoint_converts_to_the_reference_logits(tmp_path, name, d):
    authors = _authors_shufflenetv2() if name.startswith('shufflenet') else _authors_mobilenetv2(d)
    src = _save_authors_checkpoint(authors, tmp_path / 'authors.pth.tar')
    out = tmp_path / name
    convert_checkpoint(src, model_name=name, out_dir=out)
    model = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        if name.startswith('shufflenet'):
            features, fc = _shufflenet_trunk(authors, x), authors.fc
        else:
            features, fc = authors.features(x), authors.classifier[1]
        expected = gcp_logits(features, authors.dimension_reduction, fc)
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in authors.parameters())


def test_filters_name_missing_unexpected_and_mis_shaped_keys():
    """The ShuffleNetV2 and backbone filters report as the ResNet one does (checkpoints/fit.py)."""
    shufflenet = timm.create_model('shufflenetv2_100_isqrt_d256', gcp_dim=8, device='meta')
    sd = dict(shufflenet.state_dict())
    del sd['stage2.0.branch1.0.weight']
    sd['extra.weight'] = torch.zeros(1)
    with pytest.raises(ValueError, match=r'does not fit GCPShuffleNetV2\nmissing: stage2\.0\.branch1\.0\.weight\n'
                                         r'unexpected: extra\.weight'):
        gcp_shufflenet.checkpoint_filter_fn(sd, shufflenet)
    model = timm.create_model('gcp_isqrt', backbone='test_convnext', gcp_dim=8)
    sd = dict(model.state_dict(), **{'head.global_pool.reduce.conv.weight': torch.zeros(4, 64, 1, 1)})
    del sd['backbone.stem.0.bias']
    sd['backbone.extra'] = torch.zeros(1)
    with pytest.raises(ValueError, match=r'does not fit GCPBackboneModel on ConvNeXt\n'
                                         r'mis-shaped: head\.global_pool\.reduce\.conv\.weight: '
                                         r'checkpoint \(4, 64, 1, 1\) vs model \(8, 64, 1, 1\)\n'
                                         r'missing: backbone\.stem\.0\.bias\nunexpected: backbone\.extra'):
        gcp_backbone.checkpoint_filter_fn(sd, model)


@pytest.mark.parametrize('name,kwargs', [
    ('gcp_isqrt', dict(backbone='test_convnext')),
    ('shufflenetv2_100_isqrt_d256', {}),
])
def test_every_head_argument_reaches_the_pooling(name, kwargs):
    """The model arguments `gcp_X` users pass (and exported config.json files hold) set the pooling's X."""
    model = timm.create_model(name, gcp_dim=6, gcp_norm='mpn', gcp_power=0.25, gcp_dropcov=True,
                              gcp_dropcov_scale=4.0, gcp_act='relu6', device='meta', **kwargs)
    pool = model.head.global_pool
    assert (pool.dim, pool.norm.power, pool.dropcov.scale, type(pool.reduce.bn.act)) == (6, 0.25, 4.0, nn.ReLU6)
    with pytest.raises(TypeError, match='unknown GCP head argument gcp_heads'):
        timm.create_model(name, gcp_heads=2, device='meta', **kwargs)


def test_published_parameter_counts():
    counts = {'mobilenetv2_100_isqrt_d256': 35_449_064, 'mobilenetv2_100_isqrt': 10_644_968,
              'shufflenetv2_100_isqrt_d256': 34_413_260}
    for name, count in counts.items():
        model = timm.create_model(name, device='meta')
        assert sum(p.numel() for p in model.parameters()) == count, name


def test_authors_checkpoint_of_other_width_is_named(tmp_path):
    src = _save_authors_checkpoint(_authors_mobilenetv2(128), tmp_path / 'authors.pth.tar')
    with pytest.raises(ValueError, match=r'head.global_pool.reduce.conv.weight: checkpoint \(128, 1280, 1, 1\)'):
        timm.create_model('mobilenetv2_100_isqrt_d256', pretrained=True, pretrained_cfg_overlay=dict(file=str(src)))


# --- timm's train.py ------------------------------------------------------------------------------------

@pytest.mark.slow
@needs_scripts
def test_generic_model_trains_through_timm_train_py(tmp_path):
    data = write_image_folder(tmp_path / 'data', per_class=8)
    cmd = [sys.executable, '-m', 'timm_gcp.launch', os.path.join(SCRIPTS_DIR, 'train.py'), '--model', 'gcp_isqrt',
           '--model-kwargs', 'backbone=test_convnext', 'gcp_dim=8', '--num-classes', '2', '--img-size', '64',
           '--device', 'cpu', '--workers', '0', '--data-dir', str(data), '--batch-size', '8', '--epochs', '1',
           '--no-prefetcher', '--output', str(tmp_path), '--experiment', 'run']
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    checkpoint = torch.load(tmp_path / 'run' / 'last.pth.tar', map_location='cpu', weights_only=False)
    assert checkpoint['arch'] == 'gcp_isqrt' and 'backbone.stem.0.weight' in checkpoint['state_dict']
    shutil.rmtree(tmp_path / 'run')
