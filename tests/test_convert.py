"""`timm-gcp convert`: the key layouts, every original checkpoint layout, the MindSpore reader and numerics,
and bad input.

The MindSpore fixtures in tests/fixtures/mindspore/ are genuine `.ckpt` files written by MindSpore 2.10
(tests/fixtures/make_mindspore_fixtures.py), with MindSpore's own eval logits for fixed inputs; they
convert into the `ms_` architectures. The PyTorch layouts are built from our own models
(tests/helpers/layouts.py, after docs/checkpoints.md).
"""
import json
import math
import os
import pickle
import stat
from argparse import Namespace
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
import torch.nn.functional as F

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp import cli
from timm_gcp.convert.converter import ConversionError, convert_checkpoint
from timm_gcp.export import folder
from timm_gcp.export.folder import write_text_atomic
from timm_gcp.checkpoints.layouts import (
    MINDSPORE_TRAINING_STATE, RESNET_RENAMES, VIT_RENAMES, mindspore_key, rename_key,
)
from timm_gcp.checkpoints.mindspore import MindSporeCheckpointError, is_mindspore_checkpoint, load_mindspore_checkpoint
from timm_gcp.checkpoints.train_run import CheckpointError, read_checkpoint

from tests.helpers.commands import main_interrupted
from tests.helpers.layouts import (
    fmpn_plain, fmpn_training, mindspore_layout, mindspore_message, module_prefixed, vit_original,
    write_mindspore_checkpoint,
)
from tests.helpers.weights import randomize

FIXTURES = Path(__file__).parent / 'fixtures' / 'mindspore'
MS_SPECS = json.loads((FIXTURES / 'fixtures.json').read_text())['fixtures']
MS_ARCH = {('basic', 'isqrt'): 'ms_resnet18_isqrt', ('bottleneck', 'isqrt'): 'ms_resnet50_isqrt',
           ('bottleneck', 'dropcov'): 'ms_resnet50_dropcov'}
MS_ARCHS = ('ms_resnet18_dropcov', 'ms_resnet18_isqrt', 'ms_resnet34_dropcov', 'ms_resnet34_isqrt',
            'ms_resnet50_dropcov', 'ms_resnet50_isqrt')
# docs/checkpoints.md, "MindSpore numerics", by block type
MS_NUMERICS = {'basic': dict(bn_eps=1e-4, stem_bn_eps=1e-5, down_bn_eps=1e-5),
               'bottleneck': dict(pad_type='same', bn_eps=1e-4)}


@pytest.fixture(scope='module')
def ms_reference():
    return safetensors.torch.load_file(FIXTURES / 'reference_logits.safetensors')


def _ms_model_kwargs(spec):
    return dict(layers=spec['layers'], channels=spec['channels'], gcp_dim=spec['dim'])


def _ms_arch(spec):
    return MS_ARCH[spec['block'], spec['head']]


def _assert_nothing_written(out_dir: Path):
    assert not out_dir.exists()
    assert not list(out_dir.parent.glob(f'.{out_dir.name}*')), 'a temporary folder was left behind'


def _numerics(model) -> dict:
    """The MindSpore settings as the layers have them (docs/checkpoints.md, "MindSpore numerics")."""
    block = model.layer2[0]
    return dict(same_padding=type(model.conv1).__name__ == 'Conv2dSame', stem_eps=model.bn1.eps,
                block_eps=block.bn1.eps, shortcut_eps=block.downsample[1].eps,
                reduction_eps=model.head.global_pool.reduce.bn.eps)


_EXPECTED_NUMERICS = {
    'basic': dict(same_padding=False, stem_eps=1e-5, block_eps=1e-4, shortcut_eps=1e-5, reduction_eps=1e-4),
    'bottleneck': dict(same_padding=True, stem_eps=1e-4, block_eps=1e-4, shortcut_eps=1e-4, reduction_eps=1e-4),
}


# --- the key layouts (timm_gcp.checkpoints.layouts, after docs/checkpoints.md) ----------------------------------

_REDUCE = 'head.global_pool.reduce.'


@pytest.mark.parametrize('key,expected', [
    # fast-MPN-COV released weights, and the CVPR'20 / DropCov checkpoints under DataParallel's module.
    ('layer_reduce.weight', _REDUCE + 'conv.weight'),
    ('module.layer_reduce.weight', _REDUCE + 'conv.weight'),
    ('module.layer_reduce_bn.running_var', _REDUCE + 'bn.running_var'),
    ('module.eca_layer.conv.weight', 'head.global_pool.dropcov.conv.weight'),
    ('module.fc.bias', 'head.fc.bias'),
    ('fc.weight', 'head.fc.weight'),
    ('module.layer3.5.bn2.weight', 'layer3.5.bn2.weight'),  # torchvision trunk names stay
    ('layer2.0.downsample.1.running_mean', 'layer2.0.downsample.1.running_mean'),
    # fast-MPN-COV training checkpoints: the trunk as features.module.<i>
    ('features.module.0.weight', 'conv1.weight'),
    ('features.module.1.running_mean', 'bn1.running_mean'),
    ('features.module.4.0.conv1.weight', 'layer1.0.conv1.weight'),
    ('features.module.5.1.bn2.bias', 'layer2.1.bn2.bias'),
    ('features.module.6.0.downsample.0.weight', 'layer3.0.downsample.0.weight'),
    ('features.module.7.2.conv3.weight', 'layer4.2.conv3.weight'),
    ('module.features.module.7.2.conv3.weight', 'layer4.2.conv3.weight'),
    ('features.module.8.weight', _REDUCE + 'conv.weight'),
    ('features.module.9.num_batches_tracked', _REDUCE + 'bn.num_batches_tracked'),
    ('representation.conv_dr_block.0.weight', _REDUCE + 'conv.weight'),
    ('representation.conv_dr_block.1.running_mean', _REDUCE + 'bn.running_mean'),
    ('classifier.weight', 'head.fc.weight'),
    # timm-gcp's own layout
    (_REDUCE + 'conv.weight', _REDUCE + 'conv.weight'),
    ('head.global_pool.dropcov.conv.weight', 'head.global_pool.dropcov.conv.weight'),
])
def test_resnet_renames(key, expected):
    assert rename_key(key, RESNET_RENAMES) == expected


@pytest.mark.parametrize('key,expected', [
    ('visual_tokens.tokens.stem.0.weight', 'patch_embed.stem.0.weight'),
    ('visual_tokens.tokens.stage.5.norm.running_var', 'patch_embed.stage.5.norm.running_var'),
    ('module.visual_tokens.tokens.transition.bias', 'patch_embed.transition.bias'),
    ('classifier.representation.wr.weight', 'head.representation.wr.weight'),
    ('classifier.representation.norm.weight', 'head.representation.norm.weight'),
    ('classifier.cls_fc.bias', 'head.cls_fc.bias'),
    ('classifier.visual_fc.weight', 'head.visual_fc.weight'),
    ('blocks.3.attn.qkv.weight', 'blocks.3.attn.qkv.weight'),
    ('cls_token', 'cls_token'),
])
def test_vit_renames(key, expected):
    assert rename_key(key, VIT_RENAMES) == expected


@pytest.mark.parametrize('name,original,timm_gcp_key', [
    ('bn1.gamma', 'bn1.weight', 'bn1.weight'),
    ('bn1.moving_variance', 'bn1.running_var', 'bn1.running_var'),
    ('layer1.0.bn1d.beta', 'layer1.0.bn1.bias', 'layer1.0.bn1.bias'),  # ResNet-18/34 block BNs
    ('layer4.1.bn2d.moving_mean', 'layer4.1.bn2.running_mean', 'layer4.1.bn2.running_mean'),
    ('layer1.0.bn3.gamma', 'layer1.0.bn3.weight', 'layer1.0.bn3.weight'),  # ResNet-50 block BNs
    ('layer2.0.down_sample_layer.0.weight', 'layer2.0.downsample.0.weight', 'layer2.0.downsample.0.weight'),
    ('layer2.0.down_sample_layer.1.moving_variance', 'layer2.0.downsample.1.running_var',
     'layer2.0.downsample.1.running_var'),
    ('conv1.weight', 'conv1.weight', 'conv1.weight'),
    ('layer_reduce.weight', 'layer_reduce.weight', _REDUCE + 'conv.weight'),
    ('layer_reduce_bn.moving_mean', 'layer_reduce_bn.running_mean', _REDUCE + 'bn.running_mean'),
    ('eca_layer.conv.weight', 'eca_layer.conv.weight', 'head.global_pool.dropcov.conv.weight'),
    ('fc.bias', 'fc.bias', 'head.fc.bias'),
])
def test_mindspore_key_then_resnet_renames(name, original, timm_gcp_key):
    """MindSpore names to the PyTorch originals' names, which RESNET_RENAMES then maps like a PyTorch file's."""
    assert mindspore_key(name) == original
    assert rename_key(mindspore_key(name), RESNET_RENAMES) == timm_gcp_key


@pytest.mark.parametrize('name', ['moments.conv1.weight', 'moments.layer1.0.bn1d.gamma', 'accu_grads.fc.weight',
                                  'global_step', 'learning_rate', 'momentum', 'scale_sense', 'beta1_power',
                                  'adam_m.fc.bias', 'current_iterator_step'])
def test_mindspore_training_state_is_recognized(name):
    assert MINDSPORE_TRAINING_STATE.match(name)


@pytest.mark.parametrize('name', ['conv1.weight', 'layer1.0.bn1d.moving_mean', 'fc.weight', 'layer_reduce_bn.gamma',
                                  'eca_layer.conv.weight', 'global_steps', 'momentum_encoder.weight'])
def test_mindspore_weights_are_not_training_state(name):
    assert not MINDSPORE_TRAINING_STATE.match(name)


# --- the MindSpore reader ---------------------------------------------------------------------------------

def test_reader_reads_genuine_training_checkpoint():
    sd = load_mindspore_checkpoint(FIXTURES / 'ms_resnet18_isqrt_tiny.ckpt')
    assert sd['conv1.weight'].shape == (64, 3, 7, 7) and sd['conv1.weight'].dtype == torch.float32
    assert sd['fc.weight'].shape == (1001, 36) and sd['fc.bias'].shape == (1001,)
    assert {'layer1.0.bn1d.gamma', 'layer1.0.bn1d.moving_variance', 'layer1.0.down_sample_layer.1.beta'} <= set(sd)
    assert sd['global_step'].dtype == torch.int32 and sd['global_step'].tolist() == [1]
    assert sd['learning_rate'].shape == () and math.isclose(sd['learning_rate'].item(), 1e-3, rel_tol=1e-6)
    assert len([k for k in sd if k.startswith('moments.')]) == 50
    assert is_mindspore_checkpoint(FIXTURES / 'ms_resnet18_isqrt_tiny.ckpt')
    assert not is_mindspore_checkpoint(FIXTURES / 'fixtures.json')


def test_reader_checks_the_crc(tmp_path):
    path = FIXTURES / 'ms_resnet50_isqrt_tiny.ckpt'  # saved with crc_check=True
    data = path.read_bytes()
    assert data[-17:-10] == b'crc_num'
    assert load_mindspore_checkpoint(path)['layer4.0.conv3.weight'].shape == (128, 32, 1, 1)
    damaged = tmp_path / 'damaged.ckpt'
    index = data.index(b'layer_reduce.weight') + 40
    damaged.write_bytes(data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1:])
    with pytest.raises(MindSporeCheckpointError, match=r'damaged\.ckpt.*CRC32 check failed'):
        load_mindspore_checkpoint(damaged)


def test_reader_refuses_truncated_file(tmp_path):
    data = (FIXTURES / 'ms_resnet50_dropcov_tiny.ckpt').read_bytes()
    truncated = tmp_path / 'truncated.ckpt'
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(MindSporeCheckpointError, match=r'truncated\.ckpt: truncated MindSpore checkpoint'):
        load_mindspore_checkpoint(truncated)


def test_reader_joins_slices_and_checks_sizes(tmp_path):
    weight = torch.randn(6, 4)
    raw = weight.numpy().tobytes()
    sliced = tmp_path / 'sliced.ckpt'
    sliced.write_bytes(mindspore_message('w', [6, 4], 'Float32', raw[:40])
                       + mindspore_message('w', [6, 4], 'Float32', raw[40:])
                       + mindspore_message('h', [2], 'Float16', torch.tensor([1.5, -2.0]).half().numpy().tobytes()))
    sd = load_mindspore_checkpoint(sliced)
    torch.testing.assert_close(sd['w'], weight, rtol=0, atol=0)
    assert sd['h'].dtype == torch.float16 and sd['h'].tolist() == [1.5, -2.0]
    short = tmp_path / 'short.ckpt'
    short.write_bytes(mindspore_message('w', [6, 4], 'Float32', raw[:40]))
    with pytest.raises(MindSporeCheckpointError, match=r"short\.ckpt: 'w' holds 40 bytes, but shape \(6, 4\)"):
        load_mindspore_checkpoint(short)


@pytest.mark.parametrize('fixture', sorted(MS_SPECS))
def test_mindspore_layout_helper_matches_the_genuine_files(tmp_path, fixture):
    """tests/helpers/layouts.py writes what MindSpore writes (names, shapes, dtypes), for the publishing tests."""
    spec = MS_SPECS[fixture]
    genuine = {k: v for k, v in load_mindspore_checkpoint(FIXTURES / f'{fixture}.ckpt').items()
               if not MINDSPORE_TRAINING_STATE.match(k)}
    model = timm.create_model(_ms_arch(spec), **_ms_model_kwargs(spec))
    written = load_mindspore_checkpoint(write_mindspore_checkpoint(
        tmp_path / 'written.ckpt', mindspore_layout(model.state_dict(), spec['block'] == 'basic')))
    assert {k: (tuple(v.shape), v.dtype) for k, v in written.items()} == {
        k: (tuple(v.shape), v.dtype) for k, v in genuine.items()}


# --- MindSpore checkpoints: conversion into the ms_ architectures reproduces MindSpore's logits ------------

@pytest.mark.parametrize('fixture', sorted(MS_SPECS))
def test_mindspore_conversion_matches_mindspore_logits(tmp_path, ms_reference, fixture):
    spec = MS_SPECS[fixture]
    arch = _ms_arch(spec)
    out = tmp_path / 'converted'
    report = convert_checkpoint(FIXTURES / f'{fixture}.ckpt', f'{arch}.tpami_in1k', out,
                                model_kwargs=_ms_model_kwargs(spec))
    assert sorted(p.name for p in out.iterdir()) == ['config.json', 'model.safetensors', 'provenance.json']
    config = json.loads((out / 'config.json').read_text())
    # the numerics come with the architecture: the converter adds no settings of its own
    assert config['architecture'] == arch and config['pretrained_cfg']['tag'] == 'tpami_in1k'
    assert not set(MS_NUMERICS[spec['block']]) & set(config['model_args'])
    assert report.model_args == _ms_model_kwargs(spec) and report.pretrained_tag == 'tpami_in1k'

    local = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    by_tag = timm.create_model(f'{arch}.tpami_in1k', pretrained=True, **_ms_model_kwargs(spec),
                               pretrained_cfg_overlay=dict(file=str(out / 'model.safetensors'))).eval()
    for model in (local, by_tag):
        assert _numerics(model) == _EXPECTED_NUMERICS[spec['block']]
    for size in (64, 50):
        x, expected = ms_reference[f'input{size}'], ms_reference[f'{fixture}.logits{size}']
        assert expected.shape == (2, 1001)
        with torch.no_grad():
            for model in (local, by_tag):
                torch.testing.assert_close(model(x), expected[:, :1000], rtol=1e-4, atol=2e-5)

    sd = load_mindspore_checkpoint(FIXTURES / f'{fixture}.ckpt')
    weights = {k: v for k, v in sd.items() if not k.startswith('moments.') and v.dim() > 0 and k != 'global_step'}
    assert len(report.mapped) == len(weights)
    assert ('fc.weight', 'head.fc.weight') in report.mapped
    assert ('bn1.moving_variance', 'bn1.running_var') in report.mapped
    assert ('layer_reduce_bn.gamma', 'head.global_pool.reduce.bn.weight') in report.mapped
    dropped = dict(report.dropped)
    assert dropped['fc.weight[1000]'].startswith('the unused 1001st class')
    assert all(k.endswith('num_batches_tracked') for k in report.filled) and report.filled
    if spec['training']:
        assert dropped['global_step'] == dropped['moments.conv1.weight'] == 'optimizer / training state'
    if spec['head'] == 'dropcov':
        assert ('eca_layer.conv.weight', 'head.global_pool.dropcov.conv.weight') in report.mapped
        assert local.head.global_pool.dropcov.conv.weight.shape == (1, 1, 3)  # stored 4-D by MindSpore
    text = report.format()
    assert 'not placed  none' in text and "pretrained_cfg_overlay=dict(file=" in text


@pytest.mark.parametrize('fixture,wrong', [
    ('ms_resnet50_isqrt_tiny', dict(pad_type='')),  # PyTorch's symmetric padding
    ('ms_resnet50_isqrt_tiny', dict(bn_eps=1e-5)),
    ('ms_resnet18_isqrt_tiny', dict(bn_eps=1e-5)),  # block BNs
    ('ms_resnet18_isqrt_tiny', dict(stem_bn_eps=1e-4, down_bn_eps=1e-4)),
    ('ms_resnet50_dropcov_tiny', 'namesake'),  # the same weights in resnet50_dropcov: PyTorch numerics
    ('ms_resnet18_isqrt_tiny', 'namesake'),
])
def test_each_mindspore_setting_matters(tmp_path, ms_reference, fixture, wrong):
    """Without any one of the settings the logits move far from MindSpore's: the fixtures do test them."""
    spec = MS_SPECS[fixture]
    arch = _ms_arch(spec)
    out = tmp_path / 'converted'
    convert_checkpoint(FIXTURES / f'{fixture}.ckpt', f'{arch}.tpami_in1k', out, model_kwargs=_ms_model_kwargs(spec))
    if wrong == 'namesake':
        model = timm.create_model(arch[len('ms_'):], pretrained=True, **_ms_model_kwargs(spec),
                                  pretrained_cfg_overlay=dict(file=str(out / 'model.safetensors')))
    else:
        model = timm.create_model(f'local-dir:{out}', pretrained=True, **wrong)
    with torch.no_grad():
        error = (model.eval()(ms_reference['input64']) - ms_reference[f'{fixture}.logits64'][:, :1000]).abs().max()
    assert error > 1e-2


def test_mindspore_conversion_into_the_untagged_architecture(tmp_path, ms_reference):
    """An untagged ms_ --model: the report's load snippet (the caller's settings only) reproduces MindSpore."""
    spec = MS_SPECS['ms_resnet50_dropcov_tiny']
    out = tmp_path / 'converted'
    report = convert_checkpoint(FIXTURES / 'ms_resnet50_dropcov_tiny.ckpt', 'ms_resnet50_dropcov', out,
                                model_kwargs=_ms_model_kwargs(spec))
    local, snippet = report.load_snippets()
    assert local == f"timm.create_model('local-dir:{out}', pretrained=True)"
    assert snippet.startswith("timm.create_model('ms_resnet50_dropcov', pretrained=True, pretrained_cfg_overlay=")
    assert 'layers=[2, 1, 1, 1], channels=[8, 8, 16, 32], gcp_dim=8' in snippet
    assert 'pad_type' not in snippet and 'bn_eps' not in snippet
    for model in (eval(snippet, {'timm': timm}), eval(local, {'timm': timm})):
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(ms_reference['input64']),
                                       ms_reference['ms_resnet50_dropcov_tiny.logits64'][:, :1000],
                                       rtol=1e-4, atol=2e-5)


# --- TF 'same' padding against explicit padding (docs/checkpoints.md, "MindSpore numerics") ---------------

def _bn(x, sd, prefix, eps):
    return F.batch_norm(x, sd[prefix + 'running_mean'], sd[prefix + 'running_var'], sd[prefix + 'weight'],
                        sd[prefix + 'bias'], eps=eps)


def _reference_tf_same_resnet50_trunk(sd, x, layers):
    """ResNet-50 trunk with TF 'same' padding written as explicit pads (even input sizes): stem 7x7/2 pads
    (2, 3), max pool 3x3/2 pads (0, 1) with -inf, 3x3/2 convs (0, 1), 3x3/1 convs (1, 1), 1x1 convs none."""
    x = F.relu(_bn(F.conv2d(F.pad(x, (2, 3, 2, 3)), sd['conv1.weight'], stride=2), sd, 'bn1.', 1e-4))
    x = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=-math.inf), 3, 2)
    for stage, blocks in enumerate(layers, start=1):
        for b in range(blocks):
            p = f'layer{stage}.{b}.'
            stride = 2 if b == 0 and stage in (2, 3) else 1
            y = F.relu(_bn(F.conv2d(x, sd[p + 'conv1.weight']), sd, p + 'bn1.', 1e-4))
            pad = (0, 1, 0, 1) if stride == 2 else (1, 1, 1, 1)
            y = F.relu(_bn(F.conv2d(F.pad(y, pad), sd[p + 'conv2.weight'], stride=stride), sd, p + 'bn2.', 1e-4))
            y = _bn(F.conv2d(y, sd[p + 'conv3.weight']), sd, p + 'bn3.', 1e-4)
            if p + 'downsample.0.weight' in sd:
                x = _bn(F.conv2d(x, sd[p + 'downsample.0.weight'], stride=stride), sd, p + 'downsample.1.', 1e-4)
            x = F.relu(x + y)
    return x


@pytest.mark.parametrize('size', [64, 224])
def test_pad_same_equals_explicit_tf_padding(size):
    layers = (2, 1, 1, 1)
    model = randomize(timm.create_model('resnet50_isqrt', pad_type='same', bn_eps=1e-4, layers=layers,
                                        channels=(8, 8, 16, 32), gcp_dim=8))
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        features = model.forward_features(x)
        expected = _reference_tf_same_resnet50_trunk(model.state_dict(), x, layers)
        plain = timm.create_model('resnet50_isqrt', bn_eps=1e-4, layers=layers, channels=(8, 8, 16, 32), gcp_dim=8)
        plain.load_state_dict(model.state_dict())
        symmetric = plain.eval().forward_features(x)
    assert features.shape[-1] == size // 16
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
    assert (symmetric - expected).abs().max() > 1e-2


def test_pad_same_max_pool_pads_with_minus_inf_and_odd_sizes_pad_evenly():
    model = timm.create_model('resnet50_isqrt', pad_type='same', device='meta')
    x = -torch.rand(1, 2, 8, 8) - 1.0  # all negative: zero padding would show up as zeros
    torch.testing.assert_close(model.maxpool.to('cpu')(x), F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=-math.inf), 3, 2))
    conv = timm.create_model('resnet50_isqrt', pad_type='same', layers=(1, 1, 1, 1), channels=(8, 8, 16, 32),
                             gcp_dim=8).conv1
    odd = torch.randn(1, 3, 63, 63)  # TF pads 6 = (3, 3) here, as PyTorch's padding=3 does
    torch.testing.assert_close(conv(odd), F.conv2d(odd, conv.weight, stride=2, padding=3))
    with pytest.raises(ValueError, match="unknown pad_type 'valid'"):
        timm.create_model('resnet18_isqrt', pad_type='valid', device='meta')


# --- PyTorch layouts -------------------------------------------------------------------------------------

@pytest.mark.parametrize('name,layout,legacy', [
    ('resnet18_isqrt', fmpn_plain, True),  # fast-MPN-COV's released files use the legacy (non-zip) format
    ('resnet18_isqrt', fmpn_training, False),
    ('resnet18_isqrt', module_prefixed, False),  # CVPR'20
    ('resnet18_dropcov', module_prefixed, False),  # DropCov, with eca_layer
])
def test_pytorch_layouts_round_trip(tmp_path, name, layout, legacy):
    source = randomize(timm.create_model(name, gcp_dim=16))
    path = tmp_path / 'original.pth'
    torch.save(layout(source.state_dict()), path, _use_new_zipfile_serialization=not legacy)
    out = tmp_path / 'converted'
    report = convert_checkpoint(path, name, out, model_kwargs=dict(gcp_dim=16))
    snippets = report.load_snippets()  # the registered cfg fits (1000 classes, 3 channels): both lines
    assert len(snippets) == 2 and 'pretrained_cfg_overlay' in snippets[1]
    x = torch.randn(2, 3, 64, 64)
    for snippet in snippets:
        converted = eval(snippet, {'timm': timm}).eval()
        with torch.no_grad():
            torch.testing.assert_close(converted(x), source(x), rtol=0, atol=0)
    assert len(report.mapped) == len(source.state_dict())
    assert report.reduction.startswith('d=16 ')
    if layout is fmpn_training:
        assert report.weights_from == "'state_dict'"
        assert ('features.module.7.1.conv2.weight', 'layer4.1.conv2.weight') in report.mapped
        assert {k for k, _ in report.dropped} == {'epoch', 'arch', 'best_prec1', 'optimizer'}
    if name == 'resnet18_dropcov':
        assert ('module.eca_layer.conv.weight', 'head.global_pool.dropcov.conv.weight') in report.mapped


def test_reduction_size_is_inferred_and_checked(tmp_path):
    path = tmp_path / 'd256.pth'
    torch.save({'layer_reduce.weight': torch.zeros(256, 512, 1, 1), 'fc.weight': torch.zeros(1000, 32896)}, path)
    with pytest.raises(ConversionError, match=r'd256\.pth: the checkpoint reduces to d=256 \(layer_reduce\.weight '
                                              r'\(256, 512, 1, 1\)\) but resnet18_isqrt has d=128: convert with '
                                              r'--model resnet18_isqrt_d256'):
        convert_checkpoint(path, 'resnet18_isqrt', tmp_path / 'out')
    _assert_nothing_written(tmp_path / 'out')


@pytest.mark.parametrize('fmt', ['PyTorch', 'safetensors'])
@pytest.mark.parametrize('model', ['ms_resnet18_isqrt.tpami_in1k', 'ms_resnet18_isqrt', 'resnet18_isqrt.tpami_in1k'])
def test_pytorch_checkpoint_refused_for_an_ms_architecture(tmp_path, fmt, model):
    """PyTorch weights were trained with PyTorch's numerics: not for an ms_ architecture, whose namesake is named."""
    sd = timm.create_model('resnet18_isqrt', gcp_dim=16).state_dict()
    path = tmp_path / 'r18.bin'
    if fmt == 'PyTorch':
        torch.save(module_prefixed(sd), path)
    else:
        safetensors.torch.save_file(sd, path)
    message = (rf'r18\.bin: a {fmt} checkpoint, but ms_resnet18_isqrt has the MindSpore numerics '
               r'\(padding, BatchNorm eps\): convert with --model resnet18_isqrt$')
    with pytest.raises(ConversionError, match=message):
        convert_checkpoint(path, model, tmp_path / 'out', model_kwargs=dict(gcp_dim=16))
    _assert_nothing_written(tmp_path / 'out')


@pytest.mark.parametrize('fixture,model,twin', [
    ('ms_resnet50_isqrt_tiny', 'resnet50_isqrt', 'ms_resnet50_isqrt'),
    ('ms_resnet50_dropcov_tiny', 'resnet50_dropcov', 'ms_resnet50_dropcov'),
    ('ms_resnet18_isqrt_tiny', 'resnet18_isqrt', 'ms_resnet18_isqrt'),
])
def test_mindspore_checkpoint_refused_for_a_plain_architecture(tmp_path, fixture, model, twin):
    """MindSpore weights need the MindSpore numerics: a plain --model is refused, naming its ms_ twin."""
    with pytest.raises(ConversionError, match=rf'{fixture}\.ckpt: a MindSpore checkpoint needs a model with the '
                                              rf'MindSpore numerics \(padding, BatchNorm eps\), not {model}: '
                                              rf'convert with --model {twin}$'):
        convert_checkpoint(FIXTURES / f'{fixture}.ckpt', model, tmp_path / 'out',
                           model_kwargs=_ms_model_kwargs(MS_SPECS[fixture]))
    _assert_nothing_written(tmp_path / 'out')


_AUTHORS_EMA = ("'state_dict_ema' (EMA weights: the SoT / DropCov-ViT authors evaluate them; "
                "--no-ema takes 'state_dict')")


@pytest.mark.parametrize('model_name,use_ema,expect_ema,weights', [
    # the release's authors evaluate the EMA weights
    ('vit_dropcov_small.dc_in1k', None, True, "'state_dict_ema' (EMA weights: the authors of vit_dropcov_small.dc_in1k "
                                              "evaluate them; --no-ema takes 'state_dict')"),
    ('vit_dropcov_small.dc_in1k', False, False, "'state_dict'"),  # --no-ema
    # the bare names: the authors' layout says whose file it is, and they evaluate the EMA weights (SoT has no tag)
    ('vit_dropcov_small', None, True, _AUTHORS_EMA),
    ('vit_sot_small', None, True, _AUTHORS_EMA),
    ('vit_sot_small', False, False, "'state_dict'"),
    ('vit_dropcov_small', True, True, _AUTHORS_EMA),  # --use-ema
])
def test_vit_authors_checkpoint_ema(tmp_path, model_name, use_ema, expect_ema, weights):
    """The authors' timm CheckpointSaver files: the EMA weights they evaluate unless --no-ema, saying so."""
    torch.manual_seed(0)
    source = timm.create_model(model_name.split('.')[0], depth=1, num_classes=10).eval()
    ema = vit_original(source.state_dict())
    raw = {k: v + 0.5 if v.is_floating_point() else v for k, v in ema.items()}
    path = tmp_path / 'checkpoint.pth.tar'
    torch.save({'epoch': 309, 'arch': 'Deit_drop_Small', 'state_dict': raw, 'state_dict_ema': ema,
                'optimizer': {'state': {}}, 'version': 2, 'args': Namespace(model_ema=True), 'metric': 82.4}, path)
    out = tmp_path / 'converted'
    report = convert_checkpoint(path, model_name, out, model_kwargs=dict(depth=1, num_classes=10), use_ema=use_ema)
    converted = timm.create_model(f'local-dir:{out}', pretrained=True)
    expected = ema if expect_ema else raw
    torch.testing.assert_close(converted.head.cls_fc.weight, expected['classifier.cls_fc.weight'])
    torch.testing.assert_close(converted.blocks[0].attn.qkv.weight, expected['blocks.0.attn.qkv.weight'])
    assert report.weights_from == weights and f'weights     {weights}' in report.format()
    assert json.loads((out / 'provenance.json').read_text())['source']['weights'] == weights
    dropped = dict(report.dropped)
    if expect_ema:
        assert dropped['state_dict'] == 'weights without EMA, used with --no-ema'
    else:
        assert dropped['state_dict_ema'] == 'EMA weights, used with --use-ema'
    assert dropped['args'] == dropped['optimizer'] == 'training state'
    assert ('classifier.cls_fc.weight', 'head.cls_fc.weight') in report.mapped
    assert ("(the model's own buffer)", 'pos_embed') in report.mapped  # the fixed sinusoid table


@pytest.mark.parametrize('use_ema,expect_ema', [(None, False), (True, True)])
def test_own_vit_checkpoint_takes_state_dict_unless_use_ema(tmp_path, use_ema, expect_ema):
    """A checkpoint in timm-gcp's own layout (a train.py run) takes 'state_dict', as timm's validate.py."""
    torch.manual_seed(0)
    ema = timm.create_model('vit_sot_small', depth=1, num_classes=10).state_dict()
    raw = {k: v + 0.5 if v.is_floating_point() else v for k, v in ema.items()}
    path = tmp_path / 'last.pth.tar'
    torch.save({'arch': 'vit_sot_small', 'state_dict': raw, 'state_dict_ema': ema}, path)
    report = convert_checkpoint(path, model_kwargs=dict(depth=1), use_ema=use_ema)
    assert report.weights_from == ("'state_dict_ema' (EMA weights)" if expect_ema else "'state_dict'")


# --- bad input: a message naming the file and the problem, nothing written --------------------------------

def _not_a_checkpoint(tmp_path):
    path = tmp_path / 'notes.txt'
    path.write_text('not a checkpoint\n')
    return path, 'resnet18_isqrt', {}, r'notes\.txt: not a checkpoint'


def _truncated_torch(tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save(timm.create_model('resnet18_isqrt', gcp_dim=16).state_dict(), path)
    path.write_bytes(path.read_bytes()[:100_000])
    return (path, 'resnet18_isqrt', dict(gcp_dim=16),
            r'cut\.pth: cannot read it as a PyTorch checkpoint \(truncated or corrupt\?\)')


def _other_architecture(tmp_path):
    path = tmp_path / 'r50.pth'
    torch.save(fmpn_plain(timm.create_model('resnet50_isqrt', gcp_dim=16).state_dict()), path)
    return (path, 'resnet18_isqrt', dict(gcp_dim=16),
            r'r50\.pth: does not fit GCPResNet(.|\n)*mis-shaped: layer1\.0\.conv1\.weight')


def _not_a_state_dict(tmp_path):
    path = tmp_path / 'list.pth'
    torch.save([torch.zeros(1)], path)
    return path, 'resnet18_isqrt', {}, r'list\.pth: holds a list, not a dict of tensors'


def _unsafe_pickle(tmp_path):
    path = tmp_path / 'unsafe.pth'
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': Path('x')}, f, protocol=2)
    return path, 'resnet18_isqrt', {}, r'unsafe\.pth: cannot read it as a PyTorch checkpoint'


def _mindspore_extra_tensor(tmp_path):
    path = tmp_path / 'extra.ckpt'
    extra = mindspore_message('layer5.0.conv1.weight', [2, 2], 'Float32', bytes(16))
    path.write_bytes((FIXTURES / 'ms_resnet18_isqrt_tiny.ckpt').read_bytes() + extra)  # protobuf concatenation
    spec = MS_SPECS['ms_resnet18_isqrt_tiny']
    return (path, 'ms_resnet18_isqrt.tpami_in1k', _ms_model_kwargs(spec),
            r'extra\.ckpt: does not fit GCPResNet(.|\n)*unexpected: layer5\.0\.conv1\.weight')


def _mindspore_wrong_architecture(tmp_path):
    spec = MS_SPECS['ms_resnet50_isqrt_tiny']
    return (FIXTURES / 'ms_resnet50_isqrt_tiny.ckpt', 'ms_resnet18_isqrt', _ms_model_kwargs(spec),
            r'ms_resnet50_isqrt_tiny\.ckpt: does not fit GCPResNet(.|\n)*unexpected: (.*)layer1\.0\.conv3\.weight')


def _mindspore_truncated(tmp_path):
    path = tmp_path / 'cut.ckpt'
    path.write_bytes((FIXTURES / 'ms_resnet18_isqrt_tiny.ckpt').read_bytes()[:5000])
    return path, 'ms_resnet18_isqrt', {}, r'cut\.ckpt: truncated MindSpore checkpoint'


def _vit_without_head(tmp_path):
    path = tmp_path / 'deit_like.pth'
    model = timm.create_model('vit_dropcov_small', depth=1)
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith('head.')}, path)
    return (path, 'vit_dropcov_small', dict(depth=1),
            r'deit_like\.pth: the checkpoint has no weights for head\.representation\.wr\.weight, head\.cls_fc')


def _mindspore_into_vit(tmp_path):
    # a model with no ms_ twin: the message lists the ms_ architectures
    return (FIXTURES / 'ms_resnet18_isqrt_tiny.ckpt', 'vit_dropcov_small', {},
            r'ms_resnet18_isqrt_tiny\.ckpt: a MindSpore checkpoint needs a model with the MindSpore numerics '
            r'\(padding, BatchNorm eps\), not vit_dropcov_small: convert with --model one of '
            + ', '.join(MS_ARCHS) + '$')


def _mindspore_into_d256(tmp_path):
    return (FIXTURES / 'ms_resnet18_isqrt_tiny.ckpt', 'resnet18_isqrt_d256.gcp_in1k', {},
            r'not resnet18_isqrt_d256: convert with --model one of ms_resnet18_dropcov, ')


@pytest.mark.parametrize('case', [
    _not_a_checkpoint, _truncated_torch, _other_architecture, _not_a_state_dict, _unsafe_pickle,
    _mindspore_extra_tensor, _mindspore_wrong_architecture, _mindspore_truncated, _mindspore_into_vit,
    _mindspore_into_d256, _vit_without_head,
])
def test_bad_input_names_file_and_writes_nothing(tmp_path, case):
    path, model, kwargs, message = case(tmp_path)
    out = tmp_path / 'out' / 'converted'
    with pytest.raises(ConversionError, match=message):
        convert_checkpoint(path, model, out, model_kwargs=kwargs)
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    spec = MS_SPECS['ms_resnet18_isqrt_tiny']
    src, kwargs = FIXTURES / 'ms_resnet18_isqrt_tiny.ckpt', _ms_model_kwargs(spec)
    out = tmp_path / 'converted'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    with pytest.raises(ConversionError, match=r'converted: already exists \(pass --overwrite'):
        convert_checkpoint(src, 'ms_resnet18_isqrt.tpami_in1k', out, model_kwargs=kwargs)
    assert (out / 'keep.txt').read_text() == 'mine'
    convert_checkpoint(src, 'ms_resnet18_isqrt.tpami_in1k', out, model_kwargs=kwargs, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ['config.json', 'model.safetensors', 'provenance.json']
    assert [p.name for p in tmp_path.iterdir()] == ['converted']


def test_cli(tmp_path, capsys):
    spec = MS_SPECS['ms_resnet50_dropcov_tiny']
    kwargs = [f'layers={tuple(spec["layers"])}', f'channels={tuple(spec["channels"])}', f'gcp_dim={spec["dim"]}']
    out = tmp_path / 'converted'
    rc = cli.main(['convert', str(FIXTURES / 'ms_resnet50_dropcov_tiny.ckpt'), '--model',
                   'ms_resnet50_dropcov.tpami_in1k', '--out', str(out), '--model-kwargs', *kwargs])
    printed = capsys.readouterr().out
    assert rc == 0 and (out / 'model.safetensors').is_file()
    assert 'MindSpore checkpoint' in printed
    assert 'model       ms_resnet50_dropcov.tpami_in1k (pretrained cfg tag: tpami_in1k)' in printed
    # the settings line lists what the caller gave, nothing the converter added
    assert "settings    layers=(2, 1, 1, 1), channels=(8, 8, 16, 32), gcp_dim=8\n" in printed
    assert 'eca_layer.conv.weight -> head.global_pool.dropcov.conv.weight\n' in printed
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'PK\x03\x04' + bytes(100))
    assert cli.main(['convert', str(bad), '--model', 'resnet50_dropcov', '--out', str(tmp_path / 'x')]) == 1
    assert f'{bad}: cannot read it as a PyTorch checkpoint' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()


def test_ctrl_c_leaves_nothing_and_prints_one_line(tmp_path, monkeypatch, capsys):
    def save_then_interrupt(model, directory, **kwargs):
        (Path(directory) / 'model.safetensors').write_bytes(b'part')
        raise KeyboardInterrupt

    monkeypatch.setattr(folder, 'save_for_hf', save_then_interrupt)
    spec = MS_SPECS['ms_resnet18_isqrt_tiny']
    kwargs = [f'layers={tuple(spec["layers"])}', f'channels={tuple(spec["channels"])}', f'gcp_dim={spec["dim"]}']
    out = tmp_path / 'converted'
    assert main_interrupted(['convert', str(FIXTURES / 'ms_resnet18_isqrt_tiny.ckpt'), '--model',
                             'ms_resnet18_isqrt.tpami_in1k', '--out', str(out), '--model-kwargs', *kwargs]) == 130
    assert capsys.readouterr().err == 'timm-gcp convert: interrupted\n'
    _assert_nothing_written(out)


@pytest.mark.parametrize('umask,file_mode,dir_mode', [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_export_has_the_modes_of_the_umask(tmp_path, umask, file_mode, dir_mode):
    """As timm's own exporter writes (open 0o666, mkdir 0o777, less the umask), through the atomic rename."""
    spec = MS_SPECS['ms_resnet18_isqrt_tiny']
    out = tmp_path / 'converted'
    old = os.umask(umask)
    try:
        convert_checkpoint(FIXTURES / 'ms_resnet18_isqrt_tiny.ckpt', 'ms_resnet18_isqrt.tpami_in1k', out,
                           model_kwargs=_ms_model_kwargs(spec))
        write_text_atomic(out / 'README.md', 'card\n')
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == dir_mode
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {
        name: file_mode for name in ('config.json', 'model.safetensors', 'provenance.json', 'README.md')}


def test_read_checkpoint_names_a_missing_file_and_a_run_folder(tmp_path):
    with pytest.raises(CheckpointError, match=r'missing\.pth: no such file$'):
        read_checkpoint(tmp_path / 'missing.pth')
    torch.save({}, tmp_path / 'model_best.pth.tar')
    with pytest.raises(CheckpointError, match=r'is a folder, not a file: give the file, e\.g\. .*model_best\.pth\.tar'):
        read_checkpoint(tmp_path)
