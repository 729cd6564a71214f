"""The fine-tuning pieces (timm_gcp.training.finetune): the head, its learning rate, a frozen trunk, flip averaging.

See docs/training.md, "Fine-tuning and probing".
"""
import copy

import pytest
import timm
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch import nn

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp.training.finetune import (
    flip_average, freeze_trunk, head_module_names, head_parameters, scale_head_lr,
)

SMALL_RESNET = dict(channels=(8, 16, 16, 16), num_classes=3, gcp_dim=8)


def _small_gcp_resnet(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model('resnet18_isqrt', **{**SMALL_RESNET, **kwargs})


@pytest.mark.parametrize('name, kwargs, scope, expected', [
    ('resnet18_isqrt', SMALL_RESNET, 'head', ['head']),
    ('resnet18_isqrt', SMALL_RESNET, 'classifier', ['head.fc']),
    ('resnet18', dict(num_classes=3), 'head', ['fc']),
    ('convnext_atto', dict(num_classes=3), 'head', ['head.fc']),
    ('gcp_isqrt', dict(backbone='resnet18', num_classes=3, gcp_dim=8), 'head', ['head']),
    ('convnext_tiny_isqrt', dict(num_classes=3, gcp_dim=8), 'head', ['head']),
    ('deit_tiny_patch16_224_isqrt', dict(num_classes=3), 'head', ['head']),
    ('deit_tiny_patch16_224_isqrt', dict(num_classes=3), 'classifier', ['head.cls_fc', 'head.visual_fc']),
])
def test_head_module_names(name, kwargs, scope, expected):
    with torch.device('meta'):
        model = timm.create_model(name, **kwargs)
    assert head_module_names(model, scope) == expected


def test_head_errors_name_the_problem():
    with torch.device('meta'):
        model = timm.create_model('resnet18', num_classes=0)
    with pytest.raises(ValueError, match='no classifier'):
        head_module_names(model)
    with pytest.raises(ValueError, match="unknown head scope 'neck'"):
        head_module_names(model, 'neck')


@pytest.mark.parametrize('opt, layer_decay, scope', [('adamw', None, 'head'), ('momentum', 0.7, 'classifier')])
def test_head_lr_is_k_times_at_every_update(opt, layer_decay, scope):
    """Against an unscaled twin optimizer stepped by the same schedule (warm-up, then cosine)."""
    k, updates = 5.0, 12
    model = _small_gcp_resnet()
    head = {id(p) for p in head_parameters(model, scope)}
    assert head and len(head) < len(list(model.parameters()))
    optimizers, schedulers = [], []
    for scale in (None, k):
        optimizer = create_optimizer_v2(model, opt=opt, lr=0.1, weight_decay=0.05, layer_decay=layer_decay)
        if scale is not None:
            scale_head_lr(optimizer, model, scale, scope)
        scheduler, _ = create_scheduler_v2(optimizer, sched='cosine', num_epochs=3, warmup_epochs=1, warmup_lr=1e-3,
                                           min_lr=1e-4, step_on_epochs=False, updates_per_epoch=updates // 3)
        optimizers.append(optimizer)
        schedulers.append(scheduler)
    reference, scaled = optimizers

    def lrs(optimizer):  # each parameter's lr and weight decay
        return {id(p): (g['lr'], g['weight_decay']) for g in optimizer.param_groups for p in g['params']}

    for update in range(updates + 1):
        before, after = lrs(reference), lrs(scaled)
        assert set(before) == set(after)
        for pid, (lr, wd) in before.items():
            assert after[pid][1] == wd
            assert after[pid][0] == pytest.approx(lr * (k if pid in head else 1.0), rel=1e-12)
        for scheduler in schedulers:
            scheduler.step_update(update + 1)
    resumed = create_optimizer_v2(model, opt=opt, lr=0.1, weight_decay=0.05, layer_decay=layer_decay)
    scale_head_lr(resumed, model, k, scope)  # as a resumed run with the same option builds it
    resumed.load_state_dict(scaled.state_dict())
    assert lrs(resumed) == lrs(scaled)
    assert [g.get('lr_scale') for g in resumed.param_groups] == [g.get('lr_scale') for g in scaled.param_groups]


def test_scale_head_lr_refuses_bad_input():
    model = _small_gcp_resnet()
    optimizer = create_optimizer_v2(model, opt='sgd', lr=0.1)
    with pytest.raises(ValueError, match='must be positive'):
        scale_head_lr(optimizer, model, 0.0)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer = create_optimizer_v2(model, opt='momentum', lr=0.1)
    optimizer.step()
    with pytest.raises(ValueError, match='before the first optimizer step'):
        scale_head_lr(optimizer, model, 5.0)


def test_frozen_trunk_is_bit_identical_after_training():
    model = _small_gcp_resnet(drop_path_rate=0.2)
    heads = freeze_trunk(model)
    assert heads == ['head']
    trunk_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith('head.')}
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith('head.')}
    optimizer = create_optimizer_v2(model, opt='momentum', lr=0.1, weight_decay=1e-2)
    assert sum(len(g['params']) for g in optimizer.param_groups) == len(head_parameters(model))
    torch.manual_seed(1)
    for _ in range(3):
        model.train()
        loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in trunk_before.items())  # weights and BatchNorm statistics
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith('head.'))
    assert not torch.equal(after['head.fc.weight'], head_before['head.fc.weight'])
    bn = [k for k in head_before if k.endswith('running_mean')]
    assert bn and all(not torch.equal(after[k], head_before[k]) for k in bn)  # the head's BatchNorm trains
    assert model.training and not model.layer1.training and not model.bn1.training and model.head.training


def test_frozen_trunk_survives_deepcopy_and_sync_bn():
    """EMA deep-copies the model and --sync-bn replaces its BatchNorm modules: the trunk stays in eval mode."""
    model = _small_gcp_resnet(gcp_dim=0)  # no reduction: the head has no BatchNorm to synchronize
    freeze_trunk(model)
    x = torch.randn(2, 3, 32, 32)
    for other in (copy.deepcopy(model), nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))):
        other.train()
        with torch.no_grad():
            other(x)
        assert not other.bn1.training and not other.layer4[0].bn1.training and other.head.training
    assert isinstance(other.bn1, nn.SyncBatchNorm)


def test_frozen_trunk_output_is_the_eval_trunk():
    model = _small_gcp_resnet()
    reference = copy.deepcopy(model).eval()
    freeze_trunk(model)
    model.train()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        model(x)  # the hook sets the trunk to eval before the trunk runs
        assert torch.equal(model.forward_features(x), reference.forward_features(x))


@pytest.mark.parametrize('name, kwargs', [('resnet18_isqrt', SMALL_RESNET), ('resnet18', dict(num_classes=3))])
def test_flip_average_is_the_mean_of_both_logits(name, kwargs):
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        plain, mirrored = model(x), model(torch.flip(x, dims=[3]))
        handle = flip_average(model)
        averaged = model(x)
        model.train()
        trained = model(x)  # training mode: the image alone (batch statistics differ, so compare with a copy)
        handle.remove()
        assert torch.equal(trained, model(x))
    assert torch.allclose(averaged, (plain + mirrored) / 2, atol=1e-6)
    assert not torch.allclose(averaged, plain, atol=1e-4)
