"""The GCP ResNet family: sizes against the original code, architecture, timm interface, checkpoints,
and the `ms_` architectures with the MindSpore numerics (and their deprecated names)."""
import json
import warnings

import pytest
import timm
import torch
import torchvision
from torch import nn

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp.layers import covariance, isqrt, triu_vec
from timm_gcp.models.gcp_resnet import DEPRECATED_NAMES, MINDSPORE_NUMERICS, GCPResNet, checkpoint_filter_fn

from tests.helpers.layouts import fmpn_plain, fmpn_training, module_prefixed
from tests.helpers.weights import randomize

# parameter counts of the original PyTorch code (docs/architectures.md, "Parameter counts and FLOPs"), in millions
PUBLISHED_PARAMS_M = {
    'resnet18_isqrt': 19.50, 'resnet34_isqrt': 29.61, 'resnet50_isqrt': 32.03, 'resnet101_isqrt': 51.02,
    'resnet18_isqrt_d256': 44.21, 'resnet34_isqrt_d256': 54.31, 'resnet50_isqrt_d256': 56.93,
    'resnet101_isqrt_d256': 75.92,
    'resnet18_dropcov': 19.50, 'resnet34_dropcov': 29.61, 'resnet50_dropcov': 32.03, 'resnet101_dropcov': 51.02,
}
MS_ARCHS = ('ms_resnet18_isqrt', 'ms_resnet34_isqrt', 'ms_resnet50_isqrt', 'ms_resnet18_dropcov', 'ms_resnet34_dropcov',
            'ms_resnet50_dropcov')


def _namesake(name: str) -> str:
    """The PyTorch-numerics architecture of an `ms_` one (the name itself otherwise)."""
    return name[len('ms_'):] if name.startswith('ms_') else name


def _expected_params(name: str) -> int:
    """timm's plain trunk + 1x1 reduction (no bias) + BN + fc over the triangle (+3 for DropCov's ECA conv).

    The numerics of the `ms_` models (padding, BN eps) add no parameters.
    """
    name = _namesake(name)
    backbone = name.split('_')[0]
    dim = 256 if name.endswith('_d256') else 128
    trunk = timm.create_model(backbone, num_classes=0, device='meta')
    chs = trunk.num_features
    n = sum(p.numel() for p in trunk.parameters())
    n += chs * dim + 2 * dim
    n += dim * (dim + 1) // 2 * 1000 + 1000
    return n + (3 if 'dropcov' in name else 0)


@pytest.mark.parametrize('name', timm.list_models(module='gcp_resnet'))
def test_parameter_count_exact(name):
    model = timm.create_model(name, device='meta')
    count = sum(p.numel() for p in model.parameters())
    assert count == _expected_params(name)
    if _namesake(name) in PUBLISHED_PARAMS_M:
        assert round(count / 1e6, 2) == PUBLISHED_PARAMS_M[_namesake(name)]


def test_exact_counts_from_the_spec():
    counts = {n: sum(p.numel() for p in timm.create_model(n, device='meta').parameters())
              for n in ('resnet50_isqrt', 'resnet50_isqrt_d256', 'resnet50_dropcov')}
    assert counts == {'resnet50_isqrt': 32_027_432, 'resnet50_isqrt_d256': 56_929_832, 'resnet50_dropcov': 32_027_435}


@pytest.mark.parametrize('name,backbone', [('resnet18_isqrt', 'resnet18'), ('resnet50_dropcov', 'resnet50')])
def test_trunk_is_resnet_v15_with_stride1_last_stage(name, backbone):
    """Features equal torchvision's ResNet with layer4 at stride 1 and no dilation, on the same weights."""
    model = timm.create_model(name).eval()
    reference = getattr(torchvision.models, backbone)()
    missing, unexpected = reference.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith('head.')}, strict=False)
    assert set(missing) == {'fc.weight', 'fc.bias'} and not unexpected
    for m in reference.layer4[0].modules():
        if isinstance(m, nn.Conv2d):
            m.stride = (1, 1)
    reference.eval()
    x = torch.randn(1, 3, 96, 96)
    trunk = nn.Sequential(*list(reference.children())[:-2])
    features = model.forward_features(x)
    assert features.shape == (1, model.num_features, 6, 6)
    torch.testing.assert_close(features, trunk(x), rtol=1e-4, atol=1e-4)
    assert all(m.dilation == (1, 1) for m in model.layer4.modules() if isinstance(m, nn.Conv2d))


def test_feature_map_14x14_at_224():
    model = timm.create_model('resnet18_isqrt').eval()
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 224, 224)).shape == (1, 512, 14, 14)
    assert model.pretrained_cfg['pool_size'] == (14, 14)


def test_head_is_reduce_cov_isqrt_triu_fc():
    model = timm.create_model('resnet18_isqrt', num_classes=7, gcp_dim=16).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        rep = triu_vec(isqrt(covariance(model.head.global_pool.reduce(features)), 5))
        torch.testing.assert_close(model.forward_head(features, pre_logits=True), rep)
        torch.testing.assert_close(model(x), model.head.fc(rep))
    reduce_conv = model.head.global_pool.reduce.conv
    assert isinstance(reduce_conv, nn.Conv2d) and reduce_conv.bias is None and reduce_conv.kernel_size == (1, 1)
    assert model.head_hidden_size == model.head.num_features == 16 * 17 // 2


def test_dropcov_model_train_and_eval():
    model = timm.create_model('resnet18_dropcov', num_classes=5, gcp_dim=16)
    x = torch.randn(4, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        plain = triu_vec(covariance(model.head.global_pool.reduce(features)))
        torch.testing.assert_close(model.forward_head(features, pre_logits=True), plain)
    model.train()
    out = model(x)
    out.sum().backward()
    dropcov_conv = model.head.global_pool.dropcov.conv
    assert dropcov_conv.weight.grad is not None
    assert torch.isfinite(dropcov_conv.weight.grad).all()


def test_classifier_interface():
    model = timm.create_model('resnet18_isqrt', gcp_dim=16).eval()
    x = torch.randn(2, 3, 64, 64)
    assert model.get_classifier() is model.head.fc
    assert model.get_classifier(name_only=True) == model.pretrained_cfg['classifier'] == 'head.fc'
    assert model.num_features == 512 and model.head_hidden_size == 136
    model.reset_classifier(10)
    assert model(x).shape == (2, 10) and model.num_classes == 10
    model.reset_classifier(0)
    assert model(x).shape == (2, 136)
    reduce_weight = model.head.global_pool.reduce.conv.weight
    model.reset_classifier(3)
    assert model.head.global_pool.reduce.conv.weight is reduce_weight
    model.reset_classifier(0, '')
    assert model(x).shape == (2, 512, 4, 4) and model.head_hidden_size == 512
    model.reset_classifier(4, 'gcp')
    assert model(x).shape == (2, 4) and model.head_hidden_size == 136
    with pytest.raises(ValueError, match="unknown GCP global_pool 'avg'"):
        model.reset_classifier(4, 'avg')
    with pytest.raises(ValueError, match="global_pool='' returns the unpooled features and needs num_classes=0"):
        model.reset_classifier(4, '')


def test_classifier_on_unpooled_features_brings_the_pooling_back():
    """timm's contract (its default-cfg test): reset_classifier(0) then (2) on a global_pool='' model classifies."""
    model = timm.create_model('resnet18_isqrt', num_classes=0, global_pool='', gcp_dim=16).eval()
    x = torch.randn(2, 3, 64, 64)
    model.reset_classifier(0)
    assert model.head.pool_type == '' and model(x).shape == (2, 512, 4, 4)
    model.reset_classifier(2)
    assert model.head.pool_type == 'gcp' and model(x).shape == (2, 2) and model.head_hidden_size == 136


def test_classifier_after_pruning_pools_the_last_kept_stage():
    """timm's ResNet pruning removes the head; a classifier brings a GCP pooling back, sized for the kept stage."""
    model = timm.create_model('resnet18_isqrt', gcp_dim=8, gcp_iters=3).eval()
    model.prune_intermediate_layers([2])  # conv1, layer1, layer2
    assert model.num_features == 128 and model.head.pool_type == '' and model.head_hidden_size == 128
    model.reset_classifier(5)
    assert model.head.global_pool.in_features == 128 and model.head.global_pool.norm.iters == 3
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5) and model.head_hidden_size == 36


def test_refused_reset_classifier_changes_nothing():
    model = timm.create_model('resnet18_isqrt', num_classes=5, gcp_dim=8, device='meta')
    for bad in ('avg', ''):
        with pytest.raises(ValueError):
            model.reset_classifier(7, bad)
        assert model.num_classes == model.head.num_classes == model.head.fc.out_features == 5


def test_features_only_and_intermediates():
    model = timm.create_model('resnet50_isqrt', features_only=True).eval()
    assert model.feature_info.channels() == [64, 256, 512, 1024, 2048]
    assert model.feature_info.reduction() == [2, 4, 8, 16, 16]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        shapes = [f.shape[-1] for f in model(x)]
    assert shapes == [32, 16, 8, 4, 4]
    full = timm.create_model('resnet50_isqrt').eval()
    with torch.no_grad():
        final, intermediates = full.forward_intermediates(x)
        torch.testing.assert_close(final, full.forward_features(x))
    assert len(intermediates) == 5


def test_grad_checkpointing_same_output():
    model = timm.create_model('resnet18_isqrt', gcp_dim=16).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        model.set_grad_checkpointing()
        torch.testing.assert_close(model(x), ref)


def test_group_matcher_puts_head_last():
    from timm.models import group_parameters
    model = timm.create_model('resnet18_isqrt', device='meta')
    groups = group_parameters(model, model.group_matcher(), reverse=True)
    names = [n for n, _ in model.named_parameters()]
    head_groups = {groups[n] for n in names if n.startswith('head.')}
    assert len(head_groups) == 1 and head_groups.pop() == max(groups.values())


def test_factory_kwargs_and_head_settings():
    model = timm.create_model('resnet18_isqrt', gcp_dim=32, gcp_iters=3, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert model.head.global_pool.norm.iters == 3 and model.head.num_features == 32 * 33 // 2
    json.dumps(model._model_args)
    mpn = timm.create_model('resnet50_mpncov', gcp_power=0.25, device='meta')
    assert mpn.head.global_pool.norm.power == 0.25


def test_bad_settings():
    with pytest.raises(TypeError, match='unknown GCP head argument gcp_bogus; this model takes gcp_dim, gcp_norm'):
        timm.create_model('resnet18_isqrt', gcp_bogus=1)
    with pytest.raises(ValueError, match="unknown GCP norm 'svd'"):
        timm.create_model('resnet18_isqrt', gcp_norm='svd')
    with pytest.raises(ValueError, match='iters must be >= 1'):
        timm.create_model('resnet18_isqrt', gcp_iters=0)
    model = timm.create_model('resnet18_isqrt', gcp_dim=16)
    with pytest.raises(RuntimeError, match='3 channels'):
        model(torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError, match=r'expects 512 input channels \(NCHW\), got 256'):
        model.forward_head(torch.randn(1, 256, 4, 4))


@pytest.mark.parametrize('name', ['resnet18_isqrt', 'resnet18_dropcov', 'resnet50_mpncov'])
@pytest.mark.parametrize('size', [64, 32, 17])  # 17 px: the smallest input (a 2x2 map); 16 px is refused
def test_small_inputs_finite(name, size):
    model = timm.create_model(name, num_classes=10, gcp_dim=32).train()
    x = torch.randn(2, 3, size, size)
    out = model(x)
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_channels_last_matches():
    model = timm.create_model('resnet18_isqrt', gcp_dim=16).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_bf16_autocast_keeps_head_float32():
    model = timm.create_model('resnet18_isqrt', gcp_dim=16).eval()
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen[name] = output.dtype
        return hook

    model.head.global_pool.cov.register_forward_hook(record('cov'))
    model.head.global_pool.norm.register_forward_hook(record('norm'))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)
    assert seen == {'cov': torch.float32, 'norm': torch.float32}
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


@pytest.mark.slow
def test_torch_compile_forward_backward():
    torch.manual_seed(0)
    model = timm.create_model('resnet18_isqrt', num_classes=4, gcp_dim=16).train()
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(model, backend='aot_eager')
    out = compiled(x)
    out.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model(x).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-3, atol=1e-4, msg=n)


@pytest.mark.parametrize('name,kwargs', [
    ('resnet18_isqrt', {}),
    ('resnet18_isqrt', dict(gcp_iters=3)),  # autograd backward, as on GPUs
    ('resnet18_dropcov', {}),
    ('resnet50_mpncov', {}),
])
def test_head_has_no_graph_breaks(name, kwargs):
    model = timm.create_model(name, num_classes=4, gcp_dim=16, **kwargs).train()
    explanation = torch._dynamo.explain(model.head)(torch.randn(2, model.num_features, 4, 4))
    assert explanation.graph_break_count == 0, explanation.break_reasons


# --- original checkpoint layouts -------------------------------------------------------------------

@pytest.mark.parametrize('name,layout', [
    ('resnet18_isqrt', fmpn_plain), ('resnet18_isqrt', fmpn_training), ('resnet18_isqrt', module_prefixed),
    ('resnet18_dropcov', module_prefixed),  # fast-MPN-COV has no DropCov models
])
def test_original_checkpoint_layouts_load(tmp_path, name, layout):
    source = randomize(timm.create_model(name, gcp_dim=16))
    path = tmp_path / 'original.pth'
    torch.save(layout(source.state_dict()), path)
    loaded = timm.create_model(name, gcp_dim=16, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)


def test_checkpoint_with_other_num_classes_keeps_trunk_and_head(tmp_path):
    source = timm.create_model('resnet18_isqrt', gcp_dim=16).eval()
    path = tmp_path / 'original.pth'
    torch.save(fmpn_plain(source.state_dict()), path)
    loaded = timm.create_model(
        'resnet18_isqrt', gcp_dim=16, num_classes=10, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert loaded.head.fc.out_features == 10
    torch.testing.assert_close(loaded.head.global_pool.reduce.conv.weight, source.head.global_pool.reduce.conv.weight)


def test_checkpoint_with_other_reduction_is_refused(tmp_path):
    source = timm.create_model('resnet18_isqrt_d256', device='meta')
    sd = {k: torch.zeros(v.shape) for k, v in source.state_dict().items()}
    path = tmp_path / 'd256.pth'
    torch.save(fmpn_plain(sd), path)
    with pytest.raises(ValueError) as err:
        timm.create_model('resnet18_isqrt', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    message = str(err.value)
    assert '(256, 512, 1, 1)' in message and '(128, 512, 1, 1)' in message
    assert 'd=256' in message and 'd=128' in message


def test_reduction_detail_only_where_the_widths_differ():
    """Another depth at the same width: the first line does not contradict itself with two equal reductions."""
    model = timm.create_model('resnet34_isqrt', gcp_dim=8)
    other_depth = timm.create_model('resnet18_isqrt', gcp_dim=8, num_classes=3).state_dict()
    with pytest.raises(ValueError) as err:
        checkpoint_filter_fn(other_depth, model)
    assert str(err.value).splitlines()[0] == 'checkpoint does not fit GCPResNet'
    assert 'missing: layer1.2.conv1.weight' in str(err.value)
    other_width = timm.create_model('resnet34_isqrt', gcp_dim=16).state_dict()
    with pytest.raises(ValueError) as err:
        checkpoint_filter_fn(other_width, model)
    assert str(err.value).splitlines()[0] == (
        'checkpoint does not fit GCPResNet (reduction (8, 512, 1, 1) (d=8), 36 classifier inputs; '
        'checkpoint has reduction (16, 512, 1, 1) (d=16), 136 classifier inputs)')


def test_checkpoint_missing_and_unexpected_keys_listed():
    model = timm.create_model('resnet18_isqrt', gcp_dim=16)
    sd = fmpn_plain(model.state_dict())
    del sd['layer_reduce.weight']
    sd['extra.weight'] = torch.zeros(1)
    with pytest.raises(ValueError,
                       match=r'missing: head\.global_pool\.reduce\.conv\.weight(.|\n)*unexpected: extra\.weight'):
        checkpoint_filter_fn(sd, model)


def test_plain_resnet_checkpoint_is_refused():
    model = timm.create_model('resnet18_isqrt', gcp_dim=16)
    plain = timm.create_model('resnet18').state_dict()
    with pytest.raises(ValueError, match=r'missing: head\.global_pool\.reduce\.conv\.weight'):
        checkpoint_filter_fn(plain, model)


def test_class_is_timm_resnet():
    assert issubclass(GCPResNet, timm.models.resnet.ResNet)


# --- the MindSpore numerics: `ms_` architectures (docs/checkpoints.md, "MindSpore numerics") -------------

# read off the layers, as docs/checkpoints.md tabulates them per block type
PYTORCH_NUMERICS = dict(stem_conv='Conv2d', stride2_conv='Conv2d', max_pool='MaxPool2d', stem_eps=1e-5, block_eps=1e-5,
                        shortcut_eps=1e-5, reduction_eps=1e-5)
MS_BASIC_NUMERICS = dict(PYTORCH_NUMERICS, block_eps=1e-4, reduction_eps=1e-4)
MS_BOTTLENECK_NUMERICS = dict(stem_conv='Conv2dSame', stride2_conv='Conv2dSame', max_pool='MaxPool2dSame',
                              stem_eps=1e-4, block_eps=1e-4, shortcut_eps=1e-4, reduction_eps=1e-4)
TINY = dict(layers=(1, 1, 1, 1), channels=(8, 8, 16, 32), gcp_dim=8)


def _numerics(model: GCPResNet) -> dict:
    block = model.layer2[0]
    stride2 = block.conv2 if hasattr(block, 'conv3') else block.conv1  # v1.5: the stride sits on the 3x3 conv
    return dict(
        stem_conv=type(model.conv1).__name__, stride2_conv=type(stride2).__name__,
        max_pool=type(model.maxpool).__name__, stem_eps=model.bn1.eps, block_eps=block.bn1.eps,
        shortcut_eps=block.downsample[1].eps, reduction_eps=model.head.global_pool.reduce.bn.eps,
    )


def _ms_numerics(name: str) -> dict:
    return MS_BOTTLENECK_NUMERICS if 'resnet50' in name else MS_BASIC_NUMERICS


def test_mindspore_numerics_table():
    assert MINDSPORE_NUMERICS == {'basic': dict(bn_eps=1e-4, stem_bn_eps=1e-5, down_bn_eps=1e-5),
                                  'bottleneck': dict(pad_type='same', bn_eps=1e-4)}
    assert set(timm.list_models('ms_*')) == set(MS_ARCHS)
    assert DEPRECATED_NAMES == {f'{_namesake(a)}.tpami_in1k': f'{a}.tpami_in1k' for a in MS_ARCHS}


@pytest.mark.parametrize('name', MS_ARCHS)
def test_ms_architectures_carry_the_numerics_whatever_the_tag(tmp_path, name):
    """The numerics are the architecture's: untagged, tagged, and with weights loaded from a file."""
    expected = _ms_numerics(name)
    assert _numerics(timm.create_model(name, device='meta')) == expected
    assert _numerics(timm.create_model(f'{name}.tpami_in1k', device='meta')) == expected
    source = timm.create_model(name, **TINY)
    path = tmp_path / 'weights.pth'
    torch.save(source.state_dict(), path)
    loaded = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **TINY)
    assert _numerics(loaded) == expected
    # defaults, not a constraint: each setting can be overridden (the converter tests show the logits then move)
    pytorch_like = timm.create_model(name, pad_type='', bn_eps=1e-5, stem_bn_eps=1e-5, down_bn_eps=1e-5, device='meta')
    assert _numerics(pytorch_like) == PYTORCH_NUMERICS


@pytest.mark.parametrize('name', ['resnet18_isqrt', 'resnet34_isqrt', 'resnet50_isqrt', 'resnet18_dropcov',
                                  'resnet50_dropcov', 'resnet50_isqrt.gcp_in1k', 'resnet50_dropcov.dc_in1k'])
def test_plain_architectures_keep_the_pytorch_numerics(name):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        model = timm.create_model(name, device='meta')
    assert _numerics(model) == PYTORCH_NUMERICS
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]


@pytest.mark.parametrize('old,new', sorted(DEPRECATED_NAMES.items()))
def test_deprecated_names_warn_and_build_the_ms_model(old, new):
    """`<arch>.tpami_in1k` (or pretrained_cfg='tpami_in1k') is `ms_<arch>.tpami_in1k`: same settings, same weights."""
    arch, tag = old.split('.')
    for kwargs in (dict(model_name=old), dict(model_name=arch, pretrained_cfg=tag)):
        torch.manual_seed(0)
        with pytest.warns(FutureWarning, match=rf'{old} is now {new}'):
            model = timm.create_model(**kwargs, **TINY)
        torch.manual_seed(0)
        current = timm.create_model(new, **TINY)
        assert type(model) is type(current) and _numerics(model) == _numerics(current) == _ms_numerics(new)
        assert model.pretrained_cfg['architecture'] == new.split('.')[0] and model.pretrained_cfg['tag'] == 'tpami_in1k'
        assert model.pretrained_cfg == timm.create_model(new, device='meta').pretrained_cfg
        state, current_state = model.state_dict(), current.state_dict()
        assert list(state) == list(current_state)
        assert all(torch.equal(state[k], current_state[k]) for k in state)
    # explicit settings still win over the deprecated name's numerics
    with pytest.warns(FutureWarning):
        overridden = timm.create_model(old, pad_type='', bn_eps=1e-5, device='meta')
    assert overridden.layer1[0].bn1.eps == 1e-5 and type(overridden.conv1).__name__ == 'Conv2d'


@pytest.mark.parametrize('name', ['resnet18_isqrt', 'resnet18_dropcov'])
def test_an_input_with_a_one_position_map_is_refused(name):
    # the last map is the input / 16: at 16 px it is 1x1 and the covariance (so the output) constant
    model = timm.create_model(name, gcp_dim=16, num_classes=4).eval()
    with pytest.raises(ValueError, match=r'1x1 feature map .* a side of at least 17 px \(e.g. 17x17\)'):
        model(torch.randn(2, 3, 16, 16))
    with torch.no_grad():
        out = model(torch.randn(3, 3, 17, 17))
    assert out.std(dim=0).min() > 0


def test_head_settings_that_mean_nothing_are_refused():
    with pytest.raises(ValueError, match=r"power=0.5 is the matrix power of norm='mpn' .*\(iSQRT-COV computes"):
        timm.create_model('resnet18_isqrt', gcp_power=0.5, device='meta')
    with pytest.raises(ValueError, match=r"iters=3 .* norm='mpn'"):
        timm.create_model('resnet50_mpncov', gcp_iters=3, device='meta')
    with pytest.raises(ValueError, match='must be > 0, got -1.0'):
        timm.create_model('resnet18_dropcov', gcp_dropcov_scale=-1.0, device='meta')
    with pytest.raises(ValueError, match='needs dropcov=True'):
        timm.create_model('resnet18_isqrt', gcp_dropcov_scale=5.0, device='meta')


# --- model arguments that cannot be honoured (docs/architectures.md, "Head arguments") --------------------

@pytest.mark.parametrize('output_stride', [8, 32])
def test_output_stride_other_than_16_is_refused(output_stride):
    """timm's output_stride dilates (8, 16) or keeps layer4's stride (32): another network than the papers'."""
    with pytest.raises(ValueError) as info:
        timm.create_model('resnet18_isqrt', output_stride=output_stride, device='meta')
    assert str(info.value).startswith(
        f'output_stride={output_stride}: the GCP ResNets run layer4 at stride 1 without dilation')
    assert f"timm.create_model('gcp_isqrt', backbone='resnet50', output_stride={output_stride})" in str(info.value)
    with pytest.raises(ValueError, match=f'output_stride={output_stride}: '):
        timm.create_model('ms_resnet50_isqrt.tpami_in1k', output_stride=output_stride, features_only=True)


def test_output_stride_16_is_the_network_itself():
    """16 is what these networks are: the same modules and outputs as without it, no dilation anywhere."""
    torch.manual_seed(0)
    plain = timm.create_model('resnet18_isqrt', **TINY).eval()
    torch.manual_seed(0)
    same = timm.create_model('resnet18_isqrt', output_stride=16, **TINY).eval()
    assert all(m.dilation == (1, 1) for m in same.modules() if isinstance(m, nn.Conv2d))
    assert same.feature_info[-1]['reduction'] == 16
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(same(x), plain(x), rtol=0, atol=0)


def test_gcp_dim_0_is_no_reduction():
    """gcp_dim=0 pools the trunk's own channels (None cannot say it: timm.create_model drops None arguments)."""
    model = timm.create_model('resnet18_isqrt', gcp_dim=0, num_classes=5, device='meta')
    assert isinstance(model.head.global_pool.reduce, nn.Identity)
    assert model.head.global_pool.dim == 512 and model.head.fc.in_features == 512 * 513 // 2
    assert 'reduce' not in ''.join(n for n, _ in model.named_parameters())
    tiny = timm.create_model('resnet18_dropcov', **dict(TINY, gcp_dim=0), num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = tiny.forward_features(x)
        torch.testing.assert_close(tiny.forward_head(features, pre_logits=True), triu_vec(covariance(features)))


def test_gcp_dim_wider_than_the_trunk_needs_gcp_expand():
    with pytest.raises(ValueError) as info:
        timm.create_model('resnet18_isqrt', gcp_dim=4096, device='meta')
    assert 'dim=4096 (a model\'s gcp_dim) is wider than the 512 input channels' in str(info.value)
    assert '8,392,762,344 in all at 1000 classes' in str(info.value)  # resnet18_isqrt's head with gcp_dim=4096
    assert 'gcp_expand=True' in str(info.value)
    wide = timm.create_model('resnet18_isqrt', gcp_expand=True, **dict(TINY, gcp_dim=40))
    assert wide.head.global_pool.dim == 40 and wide.head.global_pool.in_features == 32
    with pytest.raises(ValueError, match='dim=40 .* wider than the 32 input channels'):
        timm.create_model('resnet18_isqrt', **dict(TINY, gcp_dim=40))


@pytest.mark.parametrize('name', [n for n in timm.list_models(module='gcp_resnet')])
def test_registered_widths_fit_their_trunk(name):
    model = timm.create_model(name, device='meta')
    assert model.head.global_pool.dim <= model.num_features


# with the ShuffleNetV2, the other family that builds its own trunk under a `GCPHead`
@pytest.mark.parametrize('name', ['resnet18_isqrt', 'resnet50_isqrt_d256.gcp_in1k', 'shufflenetv2_100_isqrt_d256'])
def test_a_string_pretrained_is_named(name):
    """timm.create_model's second positional argument is pretrained: a backbone name there is refused at once."""
    with pytest.raises(TypeError) as info:
        timm.create_model(name, 'convnext_atto')
    arch = name.split('.')[0]
    assert str(info.value) == (
        f"{arch}: pretrained must be True or False, got 'convnext_atto'; timm.create_model's second positional "
        f"argument is pretrained; a backbone goes in backbone='convnext_atto' (the generic GCP models), and a "
        f"pretrained tag in the model name (e.g. {arch}.<tag>) or in pretrained_cfg=...")
    with pytest.raises(TypeError, match='pretrained must be True or False, got 1'):
        timm.create_model(name, pretrained=1)


def test_shufflenet_head_widths():
    model = timm.create_model('shufflenetv2_100_isqrt_d256', gcp_dim=0, num_classes=3, device='meta')
    assert model.head.global_pool.dim == 1024 and isinstance(model.head.global_pool.reduce, nn.Identity)
    with pytest.raises(ValueError, match='dim=2048 .* wider than the 1024 input channels'):
        timm.create_model('shufflenetv2_100_isqrt_d256', gcp_dim=2048, device='meta')
