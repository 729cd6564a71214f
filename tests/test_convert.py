"""`timm-gcp convert`: every original checkpoint layout, the MindSpore reader and numerics, and bad input.

The MindSpore fixtures in tests/fixtures/mindspore/ are genuine `.ckpt` files written by MindSpore 2.10
(tests/fixtures/make_mindspore_fixtures.py), with MindSpore's own eval logits for fixed inputs; the
PyTorch layouts are built here from our own models.
"""
import json
import math
import pickle
from argparse import Namespace
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
import torch.nn.functional as F
from torch import nn

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp import cli
from timm_gcp.convert import ConversionError, convert_checkpoint
from timm_gcp.mindspore_ckpt import MindSporeCheckpointError, is_mindspore_checkpoint, load_mindspore_checkpoint

from original_layouts import fmpn_plain, fmpn_training, module_prefixed, randomize_bn, vit_original

FIXTURES = Path(__file__).parent / 'fixtures' / 'mindspore'
MS_SPECS = json.loads((FIXTURES / 'fixtures.json').read_text())['fixtures']
MS_ARCH = {('basic', 'isqrt'): 'resnet18_isqrt', ('bottleneck', 'isqrt'): 'resnet50_isqrt',
           ('bottleneck', 'dropcov'): 'resnet50_dropcov'}


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


# --- a minimal protobuf writer, for test inputs the MindSpore fixtures cannot provide (slices, extra tensors) ---

def _varint(n: int) -> bytes:
    out = b''
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _ms_message(tag: str, dims, dtype: str, content: bytes) -> bytes:
    """One serialized `Checkpoint` holding one `Value`, as MindSpore writes per parameter (slice)."""
    tensor = b''.join(_varint(1 << 3) + _varint(d) for d in dims) + _field(2, dtype.encode()) + _field(3, content)
    return _field(1, _field(1, tag.encode()) + _field(2, tensor))


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
    sliced.write_bytes(_ms_message('w', [6, 4], 'Float32', raw[:40]) + _ms_message('w', [6, 4], 'Float32', raw[40:])
                       + _ms_message('h', [2], 'Float16', torch.tensor([1.5, -2.0]).half().numpy().tobytes()))
    sd = load_mindspore_checkpoint(sliced)
    torch.testing.assert_close(sd['w'], weight, rtol=0, atol=0)
    assert sd['h'].dtype == torch.float16 and sd['h'].tolist() == [1.5, -2.0]
    short = tmp_path / 'short.ckpt'
    short.write_bytes(_ms_message('w', [6, 4], 'Float32', raw[:40]))
    with pytest.raises(MindSporeCheckpointError, match=r"short\.ckpt: 'w' holds 40 bytes, but shape \(6, 4\)"):
        load_mindspore_checkpoint(short)


# --- MindSpore checkpoints: conversion reproduces MindSpore's logits -------------------------------------

@pytest.mark.parametrize('fixture', sorted(MS_SPECS))
def test_mindspore_conversion_matches_mindspore_logits(tmp_path, ms_reference, fixture):
    spec = MS_SPECS[fixture]
    arch = _ms_arch(spec)
    out = tmp_path / 'converted'
    report = convert_checkpoint(FIXTURES / f'{fixture}.ckpt', f'{arch}.tpami_in1k', out,
                                model_kwargs=_ms_model_kwargs(spec))
    assert sorted(p.name for p in out.iterdir()) == ['config.json', 'model.safetensors']
    config = json.loads((out / 'config.json').read_text())
    settings = {'basic': dict(bn_eps=1e-4, stem_bn_eps=1e-5, down_bn_eps=1e-5),
                'bottleneck': dict(pad_type='same', bn_eps=1e-4)}[spec['block']]
    assert config['architecture'] == arch and settings.items() <= config['model_args'].items()

    local = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    by_tag = timm.create_model(f'{arch}.tpami_in1k', pretrained=True, **_ms_model_kwargs(spec),
                               pretrained_cfg_overlay=dict(file=str(out / 'model.safetensors'))).eval()
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
    dropped = dict(report.dropped)
    assert dropped['fc.weight[1000]'].startswith('the unused 1001st class')
    assert all(k.endswith('num_batches_tracked') for k in report.filled) and report.filled
    if spec['training']:
        assert dropped['global_step'] == dropped['moments.conv1.weight'] == 'optimizer / training state'
    if spec['head'] == 'dropcov':
        assert ('eca_layer.conv.weight', 'head.dropcov.conv.weight') in report.mapped
        assert local.head.dropcov.conv.weight.shape == (1, 1, 3)  # stored 4-D by MindSpore
    text = report.format()
    assert 'not placed  none' in text and "pretrained_cfg_overlay=dict(file=" in text


@pytest.mark.parametrize('fixture,wrong', [
    ('ms_resnet50_isqrt_tiny', dict(pad_type='')),  # PyTorch's symmetric padding
    ('ms_resnet50_isqrt_tiny', dict(bn_eps=1e-5)),
    ('ms_resnet18_isqrt_tiny', dict(bn_eps=1e-5)),  # block BNs
    ('ms_resnet18_isqrt_tiny', dict(stem_bn_eps=1e-4, down_bn_eps=1e-4)),
])
def test_each_mindspore_setting_matters(tmp_path, ms_reference, fixture, wrong):
    """Without any one of the settings the logits move far from MindSpore's: the fixtures do test them."""
    spec = MS_SPECS[fixture]
    out = tmp_path / 'converted'
    convert_checkpoint(FIXTURES / f'{fixture}.ckpt', f'{_ms_arch(spec)}.tpami_in1k', out,
                       model_kwargs=_ms_model_kwargs(spec))
    model = timm.create_model(f'local-dir:{out}', pretrained=True, **wrong).eval()
    with torch.no_grad():
        error = (model(ms_reference['input64']) - ms_reference[f'{fixture}.logits64'][:, :1000]).abs().max()
    assert error > 1e-2


def test_mindspore_settings_without_the_tag(tmp_path, ms_reference):
    """An untagged --model still gets the MindSpore settings, recorded in config.json and the load snippet."""
    spec = MS_SPECS['ms_resnet50_dropcov_tiny']
    out = tmp_path / 'converted'
    report = convert_checkpoint(FIXTURES / 'ms_resnet50_dropcov_tiny.ckpt', 'resnet50_dropcov', out,
                                model_kwargs=_ms_model_kwargs(spec))
    assert "pad_type='same', bn_eps=0.0001" in report.load_snippet()
    model = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(ms_reference['input64']),
                                   ms_reference['ms_resnet50_dropcov_tiny.logits64'][:, :1000], rtol=1e-4, atol=2e-5)


# --- TF 'same' padding against explicit padding (gcp-methods.md section 10) --------------------------------

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
    model = randomize_bn(timm.create_model('resnet50_isqrt', pad_type='same', bn_eps=1e-4, layers=layers,
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


def test_tag_settings_follow_the_weights():
    """The tag's settings apply when it is named or its weights are loaded, never to plain models."""
    named = timm.create_model('resnet50_isqrt.tpami_in1k', device='meta')
    assert type(named.conv1).__name__ == 'Conv2dSame' and named.bn1.eps == 1e-4
    assert named._model_args == dict(pad_type='same', bn_eps=1e-4)
    plain = timm.create_model('resnet18_isqrt', device='meta')  # default tag tpami_in1k, but no weights
    assert plain.layer1[0].bn1.eps == 1e-5 and plain._model_args == {}
    r18 = timm.create_model('resnet18_isqrt', pretrained_cfg='tpami_in1k', device='meta')
    assert (r18.bn1.eps, r18.layer1[0].bn1.eps, r18.layer2[0].downsample[1].eps, r18.head.reduce.bn.eps) == \
        (1e-5, 1e-4, 1e-5, 1e-4)
    overridden = timm.create_model('resnet50_isqrt.tpami_in1k', pad_type='', device='meta')
    assert isinstance(overridden.conv1, nn.Conv2d) and type(overridden.conv1).__name__ == 'Conv2d'
    assert timm.create_model('resnet50_isqrt.gcp_in1k', device='meta').bn1.eps == 1e-5


# --- PyTorch layouts -------------------------------------------------------------------------------------

@pytest.mark.parametrize('name,layout,legacy', [
    ('resnet18_isqrt', fmpn_plain, True),  # fast-MPN-COV's released files use the legacy (non-zip) format
    ('resnet18_isqrt', fmpn_training, False),
    ('resnet18_isqrt', module_prefixed, False),  # CVPR'20
    ('resnet18_dropcov', module_prefixed, False),  # DropCov, with eca_layer
])
def test_pytorch_layouts_round_trip(tmp_path, name, layout, legacy):
    source = randomize_bn(timm.create_model(name, gcp_dim=16))
    path = tmp_path / 'original.pth'
    torch.save(layout(source.state_dict()), path, _use_new_zipfile_serialization=not legacy)
    out = tmp_path / 'converted'
    report = convert_checkpoint(path, name, out, model_kwargs=dict(gcp_dim=16))
    converted = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), source(x), rtol=0, atol=0)
    assert len(report.mapped) == len(source.state_dict())
    assert report.reduction.startswith('d=16 ')
    if layout is fmpn_training:
        assert report.weights_from == "'state_dict'"
        assert ('features.module.7.1.conv2.weight', 'layer4.1.conv2.weight') in report.mapped
        assert {k for k, _ in report.dropped} == {'epoch', 'arch', 'best_prec1', 'optimizer'}
    if name == 'resnet18_dropcov':
        assert ('module.eca_layer.conv.weight', 'head.dropcov.conv.weight') in report.mapped


def test_reduction_size_is_inferred_and_checked(tmp_path):
    path = tmp_path / 'd256.pth'
    torch.save({'layer_reduce.weight': torch.zeros(256, 512, 1, 1), 'fc.weight': torch.zeros(1000, 32896)}, path)
    with pytest.raises(ConversionError, match=r'd256\.pth: the checkpoint reduces to d=256 \(layer_reduce\.weight '
                                              r'\(256, 512, 1, 1\)\) but resnet18_isqrt has d=128: convert with '
                                              r'--model resnet18_isqrt_d256'):
        convert_checkpoint(path, 'resnet18_isqrt', tmp_path / 'out')
    _assert_nothing_written(tmp_path / 'out')


def test_pytorch_checkpoint_refused_for_mindspore_tag(tmp_path):
    path = tmp_path / 'r18.pth'
    torch.save(timm.create_model('resnet18_isqrt', gcp_dim=16).state_dict(), path)
    with pytest.raises(ConversionError, match=r'resnet18_isqrt\.tpami_in1k means the MindSpore numerics'):
        convert_checkpoint(path, 'resnet18_isqrt.tpami_in1k', tmp_path / 'out', model_kwargs=dict(gcp_dim=16))
    _assert_nothing_written(tmp_path / 'out')


@pytest.mark.parametrize('prefer_ema', [True, False])
def test_dropcov_vit_checkpoint_prefers_ema(tmp_path, prefer_ema):
    """The authors' timm CheckpointSaver files: EMA weights by default, 'state_dict' with --no-ema."""
    torch.manual_seed(0)
    source = timm.create_model('vit_dropcov_small', depth=1, num_classes=10).eval()
    ema = vit_original(source.state_dict())
    raw = {k: v + 0.5 if v.is_floating_point() else v for k, v in ema.items()}
    path = tmp_path / 'checkpoint.pth.tar'
    torch.save({'epoch': 309, 'arch': 'Deit_drop_Small', 'state_dict': raw, 'state_dict_ema': ema,
                'optimizer': {'state': {}}, 'version': 2, 'args': Namespace(model_ema=True), 'metric': 82.4}, path)
    out = tmp_path / 'converted'
    report = convert_checkpoint(path, 'vit_dropcov_small', out, model_kwargs=dict(depth=1, num_classes=10),
                                prefer_ema=prefer_ema)
    converted = timm.create_model(f'local-dir:{out}', pretrained=True)
    expected = ema if prefer_ema else raw
    torch.testing.assert_close(converted.head.visual_fc.weight, expected['classifier.visual_fc.weight'])
    torch.testing.assert_close(converted.blocks[0].attn.qkv.weight, expected['blocks.0.attn.qkv.weight'])
    assert report.weights_from == ("'state_dict_ema' (EMA weights)" if prefer_ema else "'state_dict'")
    dropped = dict(report.dropped)
    if prefer_ema:
        assert dropped['state_dict'] == 'weights without EMA, used with --no-ema'
    else:
        assert dropped['state_dict_ema'] == 'EMA weights, not used with --no-ema'
    assert dropped['args'] == dropped['optimizer'] == 'training state'
    assert ('classifier.cls_fc.weight', 'head.cls_fc.weight') in report.mapped
    assert ("(the model's own buffer)", 'pos_embed') in report.mapped  # the fixed sinusoid table


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
    extra = _ms_message('layer5.0.conv1.weight', [2, 2], 'Float32', bytes(16))
    path.write_bytes((FIXTURES / 'ms_resnet18_isqrt_tiny.ckpt').read_bytes() + extra)  # protobuf concatenation
    spec = MS_SPECS['ms_resnet18_isqrt_tiny']
    return (path, 'resnet18_isqrt.tpami_in1k', _ms_model_kwargs(spec),
            r'extra\.ckpt: does not fit GCPResNet(.|\n)*unexpected: layer5\.0\.conv1\.weight')


def _mindspore_wrong_architecture(tmp_path):
    spec = MS_SPECS['ms_resnet50_isqrt_tiny']
    return (FIXTURES / 'ms_resnet50_isqrt_tiny.ckpt', 'resnet18_isqrt', _ms_model_kwargs(spec),
            r'ms_resnet50_isqrt_tiny\.ckpt: does not fit GCPResNet(.|\n)*unexpected: (.*)layer1\.0\.conv3\.weight')


def _mindspore_truncated(tmp_path):
    path = tmp_path / 'cut.ckpt'
    path.write_bytes((FIXTURES / 'ms_resnet18_isqrt_tiny.ckpt').read_bytes()[:5000])
    return path, 'resnet18_isqrt', {}, r'cut\.ckpt: truncated MindSpore checkpoint'


def _vit_without_head(tmp_path):
    path = tmp_path / 'deit_like.pth'
    model = timm.create_model('vit_dropcov_small', depth=1)
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith('head.')}, path)
    return (path, 'vit_dropcov_small', dict(depth=1),
            r'deit_like\.pth: the checkpoint has no weights for head\.representation\.wr\.weight, head\.cls_fc')


def _mindspore_into_vit(tmp_path):
    return (FIXTURES / 'ms_resnet18_isqrt_tiny.ckpt', 'vit_dropcov_small', {},
            r'ms_resnet18_isqrt_tiny\.ckpt: MindSpore checkpoints are GCP ResNets, vit_dropcov_small is not one')


@pytest.mark.parametrize('case', [
    _not_a_checkpoint, _truncated_torch, _other_architecture, _not_a_state_dict, _unsafe_pickle,
    _mindspore_extra_tensor, _mindspore_wrong_architecture, _mindspore_truncated, _mindspore_into_vit,
    _vit_without_head,
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
        convert_checkpoint(src, 'resnet18_isqrt.tpami_in1k', out, model_kwargs=kwargs)
    assert (out / 'keep.txt').read_text() == 'mine'
    convert_checkpoint(src, 'resnet18_isqrt.tpami_in1k', out, model_kwargs=kwargs, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ['config.json', 'model.safetensors']
    assert [p.name for p in tmp_path.iterdir()] == ['converted']


def test_cli(tmp_path, capsys):
    spec = MS_SPECS['ms_resnet50_dropcov_tiny']
    kwargs = [f'layers={tuple(spec["layers"])}', f'channels={tuple(spec["channels"])}', f'gcp_dim={spec["dim"]}']
    out = tmp_path / 'converted'
    rc = cli.main(['convert', str(FIXTURES / 'ms_resnet50_dropcov_tiny.ckpt'), '--model', 'resnet50_dropcov.tpami_in1k',
                   '--out', str(out), '--model-kwargs', *kwargs])
    printed = capsys.readouterr().out
    assert rc == 0 and (out / 'model.safetensors').is_file()
    assert 'MindSpore checkpoint' in printed and "settings    pad_type='same', bn_eps=0.0001" in printed
    assert 'eca_layer.conv.weight -> head.dropcov.conv.weight\n' in printed
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'PK\x03\x04' + bytes(100))
    assert cli.main(['convert', str(bad), '--model', 'resnet50_dropcov', '--out', str(tmp_path / 'x')]) == 1
    assert f'{bad}: cannot read it as a PyTorch checkpoint' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()
