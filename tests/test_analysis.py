"""timm_gcp.analysis: the landscape probe against closed forms, corruptions, seed spread, and `timm-gcp analyze`.

Nothing is downloaded; the command runs on a tiny Fashion-MNIST stand-in with tiny models.
"""
import argparse
import colorsys
import copy
import json
import math

import pytest
import timm
import torch
from torch import nn

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp import cli
from timm_gcp._errors import UsageError
from timm_gcp.analysis.run import RAW, format_summary
from timm_gcp.analysis import (
    CORRUPTIONS, SEVERITIES, check_corruptions, compare, corruption, corruption_errors, mean_corruption_error,
    probe_activations, probe_parameters, resolve_split, split_points, step_sizes,
)
from timm_gcp.analysis.spread import NO_SPREAD, NOT_ENOUGH_SEEDS, holm, t_cdf, t_quantile
from timm_gcp.training.data import FashionMNISTData
from timm_gcp.training.fashion_mnist import load_fashion_mnist
from timm_gcp.training.loop import OptimConfig, create_pair, small_resnet_kwargs, train_pair, trunk_share

from tests.helpers.fashion_mnist import write_fashion_mnist
from tests.helpers.images import write_image_folder


def half_squared_error(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((out - target) ** 2).sum()


class TwoLinear(nn.Module):
    """stem -> head, both linear: with a squared loss, the loss along the stem's activation gradient is quadratic."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(4, 5).double()
        self.head = nn.Linear(5, 3).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x))


@pytest.fixture
def quadratic():
    torch.manual_seed(0)
    return TwoLinear(), torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)


def test_activation_probe_equals_the_closed_form_of_a_quadratic(quadratic):
    model, x, t = quadratic
    etas = [0.1, 0.5, 2.0, 7.5]
    probe = probe_activations(model, 'stem', x, t, half_squared_error, etas, step=3)
    # y: the split activation; L(y) = 1/2 ||y W^T + b - t||^2, g = (y W^T + b - t) W
    with torch.no_grad():
        w = model.head.weight
        y = model.stem(x)
        r = model.head(y) - t
        g = r @ w
        gw = g @ w.T            # the output's change per unit step
        hg = gw @ w             # the Hessian W^T W applied to g, row by row
    for eta, loss, change in zip(etas, probe.loss, probe.grad_change):
        assert loss == pytest.approx(0.5 * (r + eta * gw).pow(2).sum().item(), rel=1e-12)
        assert loss == pytest.approx((0.5 * r.pow(2).sum() + eta * g.pow(2).sum()
                                      + 0.5 * eta ** 2 * gw.pow(2).sum()).item(), rel=1e-12)
        assert change == pytest.approx(eta * hg.norm().item(), rel=1e-12)
    assert probe.step == 3 and probe.etas == etas
    assert probe.loss0 == pytest.approx(0.5 * r.pow(2).sum().item(), rel=1e-12)
    assert probe.grad_norm == pytest.approx(g.norm().item(), rel=1e-12)
    assert probe.beta == pytest.approx((hg.norm() / g.norm()).item(), rel=1e-12)
    assert probe.to_dict()['beta'] == probe.beta
    # scale-free (docs/analysis.md, "Scale-free measures"): L rises along +g, so its band spans eta_min..eta_max
    # and over the first-order prediction it is 1 + (eta_min + eta_max) / 2 ||W g||^2 / ||g||^2
    lo, hi = min(etas), max(etas)
    assert probe.loss_band_rel == pytest.approx(
        1 + (lo + hi) / 2 * (gw.pow(2).sum() / g.pow(2).sum()).item(), rel=1e-10)
    assert probe.grad_change_rel == pytest.approx(hi * (hg.norm() / g.norm()).item(), rel=1e-12)
    assert probe.to_dict()['loss_band_rel'] == probe.loss_band_rel
    assert probe.to_dict()['max_grad_change'] == pytest.approx(hi * hg.norm().item(), rel=1e-12)
    # the probe works on a copy: the model's weights and gradients are untouched
    assert model.head.weight.grad is None and torch.equal(model.head.weight, w)


def test_parameter_probe_equals_the_closed_form_of_a_linear_model(quadratic):
    _, x, t = quadratic
    torch.manual_seed(1)
    model = nn.Linear(4, 3).double()
    etas = [0.01, 0.1, 0.3]
    probe = probe_parameters(model, x, t, half_squared_error, etas)
    with torch.no_grad():
        r = model(x) - t
        grad_w, grad_b = r.T @ x, r.sum(0)                # dL/dW, dL/db
        d_out = x @ grad_w.T + grad_b                     # the output's change per unit step
        d_grad = torch.cat([(d_out.T @ x).flatten(), d_out.sum(0)])
    for eta, loss, change in zip(etas, probe.loss, probe.grad_change):
        assert loss == pytest.approx(0.5 * (r + eta * d_out).pow(2).sum().item(), rel=1e-12)
        assert change == pytest.approx(eta * d_grad.norm().item(), rel=1e-12)
    grad_norm = torch.cat([grad_w.flatten(), grad_b]).norm().item()
    assert probe.beta == pytest.approx(d_grad.norm().item() / grad_norm, rel=1e-12)


def test_step_sizes_default_to_the_original_and_reject_an_empty_range():
    etas = step_sizes()
    assert len(etas) == 50 and etas[0] == pytest.approx(0.1) and etas[-1] == pytest.approx(75.0)
    assert etas[1] - etas[0] == pytest.approx((75 - 0.1) / 49)
    with pytest.raises(ValueError, match='the step range is empty: 0 step sizes'):
        step_sizes(0.1, 75, 0)
    with pytest.raises(ValueError, match='0 < start <= stop'):
        step_sizes(5, 1, 10)


@pytest.fixture(scope='module')
def tiny_pair():
    kwargs = dict(in_chans=1, num_classes=10, **small_resnet_kwargs(0.125))
    return create_pair(('resnet18_isqrt', 'resnet18'), (dict(kwargs, gcp_dim=8), kwargs), seed=0)


def test_split_points_of_a_timm_model(tiny_pair):
    gcp, twin = tiny_pair
    assert split_points(gcp)[:3] == ['stem', 'act1', 'layer1'] and split_points(twin) == split_points(gcp)
    module, at_input = resolve_split(gcp, 'stem')  # the first stage's input: after the max-pool, as the original
    assert module is gcp.layer1 and at_input
    assert resolve_split(gcp, 'layer2') == (gcp.layer2, False)
    with pytest.raises(ValueError, match="unknown split point 'layer9'.*valid: stem, act1, layer1, layer2"):
        resolve_split(gcp, 'layer9')


def test_probe_at_the_stem_moves_the_max_pool_output(tiny_pair):
    gcp, _ = tiny_pair
    torch.manual_seed(0)
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 10, (4,))
    probe = probe_activations(gcp, 'stem', x, y, nn.CrossEntropyLoss(), [0.5, 1.0])
    with torch.no_grad():
        stem = gcp.maxpool(gcp.act1(gcp.bn1(gcp.conv1(x))))
    leaf = stem.clone().requires_grad_()
    loss = nn.CrossEntropyLoss()(_after_stem(gcp, leaf), y)
    assert probe.loss0 == pytest.approx(loss.item(), rel=1e-5)
    assert probe.grad_norm == pytest.approx(torch.autograd.grad(loss, leaf)[0].norm().item(), rel=1e-4)


def _after_stem(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        x = stage(x)
    return model.forward_head(x)


def _train_mode_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, train: bool) -> float:
    copied = copy.deepcopy(model).train(train)
    with torch.no_grad():
        return nn.CrossEntropyLoss()(copied(x), y).item()


def test_probe_runs_in_training_mode_and_leaves_mode_and_random_state(tiny_pair):
    """docs/analysis.md, "Landscape probe": BatchNorm on batch statistics whatever mode the model is in."""
    gcp, _ = tiny_pair
    torch.manual_seed(0)
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 10, (4,))
    model = copy.deepcopy(gcp).eval()
    state = torch.get_rng_state()
    probe = probe_activations(model, 'stem', x, y, nn.CrossEntropyLoss(), [0.5, 1.0], seed=3)
    params = probe_parameters(model, x, y, nn.CrossEntropyLoss(), [0.01], seed=3)
    assert not model.training and torch.equal(torch.get_rng_state(), state)
    assert probe.loss0 == pytest.approx(_train_mode_loss(model, x, y, True), rel=1e-6)
    assert params.loss0 == pytest.approx(_train_mode_loss(model, x, y, True), rel=1e-6)
    assert probe.loss0 != pytest.approx(_train_mode_loss(model, x, y, False), rel=1e-3)
    in_train = probe_activations(copy.deepcopy(gcp).train(), 'stem', x, y, nn.CrossEntropyLoss(), [0.5, 1.0], seed=3)
    assert probe.to_dict() == in_train.to_dict()


def test_a_probe_on_the_first_update_of_an_epoch_sees_training_mode(tmp_path):
    """The end-of-epoch evaluation leaves the model in eval mode; the probe before the next update must not be."""
    folder = write_fashion_mnist(tmp_path, n_train=16, n_test=8)
    data = FashionMNISTData(load_fashion_mnist(str(folder), 'train'), load_fashion_mnist(str(folder), 'test'),
                            16, 8, 32, 8, seed=0)
    kwargs = dict(in_chans=1, num_classes=10, **small_resnet_kwargs(0.125))
    gcp, twin = create_pair(('resnet18_isqrt', 'resnet18'), (dict(kwargs, gcp_dim=8), kwargs), seed=0)
    seen = {}

    def on_step(step: int, x: torch.Tensor, y: torch.Tensor) -> None:
        if step == data.steps_per_epoch:  # the first update of epoch 2, right after the evaluation
            seen['training'] = gcp.training
            seen['probe'] = probe_activations(gcp, 'stem', x, y, nn.CrossEntropyLoss(), [1.0, 5.0]).to_dict()
            seen['model'], seen['batch'] = copy.deepcopy(gcp), (x, y)

    train_pair(('resnet18_isqrt', 'resnet18'), (gcp, twin), data, 2, OptimConfig(), torch.Generator().manual_seed(0),
               on_step=(on_step, None), rows=False)
    x, y = seen['batch']
    assert seen['training']
    expected = probe_activations(seen['model'].train(), 'stem', x, y, nn.CrossEntropyLoss(), [1.0, 5.0])
    assert seen['probe'] == expected.to_dict()
    assert seen['probe']['loss0'] != pytest.approx(_train_mode_loss(seen['model'], x, y, False), rel=1e-3)


@pytest.mark.parametrize('gcp, twin, kwargs', [
    ('mobilenetv2_100_isqrt', 'mobilenetv2_100', {}),
    ('convnext_tiny_isqrt', 'convnext_tiny', {}),
    ('resnet18_dropcov', 'resnet18', {}),
    ('deit_tiny_patch16_224_isqrt', 'deit_tiny_patch16_224', {}),
    ('gcp_isqrt', 'resnet18', dict(backbone='resnet18')),
])
def test_every_trunk_tensor_of_the_twin_is_shared(gcp, twin, kwargs):
    """docs/analysis.md, "The pair": the trunk under `backbone.` maps onto the plain model's names."""
    share = trunk_share(timm.create_model(gcp, device='meta', num_classes=10, **kwargs),
                        timm.create_model(twin, device='meta', num_classes=10))
    twin_state = timm.create_model(twin, device='meta', num_classes=10).state_dict()
    classifier = {'mobilenetv2_100': 'classifier.', 'convnext_tiny': 'head.fc.'}.get(twin, 'head.' if 'deit' in twin
                                                                                      else 'fc.')
    assert share.paired and share.total == len([k for k in twin_state if not k.startswith(classifier)])
    assert not share.extra
    if gcp.startswith(('mobilenetv2', 'convnext', 'gcp_')):
        assert all(v == f'backbone.{k}' for k, v in share.mapping.items())
    if twin == 'convnext_tiny':  # the LayerNorm timm keeps in its head is the trunk's, before the pooling
        assert share.mapping['head.norm.weight'] == 'backbone.head.norm.weight'


def test_create_pair_copies_a_trunk_under_backbone():
    kwargs = dict(in_chans=1, num_classes=10, **small_resnet_kwargs(0.125))
    gcp, twin = create_pair(('gcp_isqrt', 'resnet18'), (dict(kwargs, backbone='resnet18', gcp_dim=8), kwargs), 0)
    twin_state, gcp_state = twin.state_dict(), gcp.state_dict()
    assert all(torch.equal(twin_state[k], gcp_state[f'backbone.{k}']) for k in twin_state if not k.startswith('fc.'))
    assert not torch.equal(twin.conv1.weight, timm.create_model('resnet18', **kwargs).conv1.weight)


def test_brightness_shifts_the_hsv_value_as_imagenet_c():
    """ImageNet-C: RGB -> HSV, V + c clipped, -> RGB (here against colorsys); a grey image is x + c."""
    x = torch.tensor([[0.2, 0.5, 0.1], [0.9, 0.3, 0.6], [0.0, 0.0, 0.0], [0.7, 0.7, 0.7], [0.95, 0.2, 0.4]])
    images = x.T.reshape(1, 3, 1, 5)
    out = corruption('brightness', 3)(images).reshape(3, 5).T  # c = 0.3
    for pixel, got in zip(x.tolist(), out.tolist()):
        h, s, v = colorsys.rgb_to_hsv(*pixel)
        expected = colorsys.hsv_to_rgb(h, s, min(v + 0.3, 1.0))
        assert got == pytest.approx([round(e * 255) / 255 for e in expected], abs=1e-6), pixel
    grey = torch.tensor([0.1, 0.5, 0.8]).reshape(1, 1, 1, 3)
    assert corruption('brightness', 1)(grey).flatten().tolist() == pytest.approx(
        [round(min(v + 0.1, 1) * 255) / 255 for v in (0.1, 0.5, 0.8)], abs=1e-6)


def test_a_pair_with_different_class_counts_is_refused():
    kwargs = dict(in_chans=1, **small_resnet_kwargs(0.125))
    with pytest.raises(ValueError, match="'resnet18_isqrt' has 10, 'resnet18' has 5"):
        create_pair(('resnet18_isqrt', 'resnet18'),
                    (dict(kwargs, num_classes=10, gcp_dim=8), dict(kwargs, num_classes=5)), 0)
    with pytest.raises(ValueError, match="'resnet_nope' is not a timm model"):
        create_pair(('resnet18_isqrt', 'resnet_nope'), ({}, {}), 0)


def test_corruptions_keep_range_grow_with_severity_and_repeat():
    torch.manual_seed(0)
    x = torch.rand(8, 1, 28, 28).mul(255).round().div(255)
    for name in CORRUPTIONS:
        distances = []
        for severity in SEVERITIES:
            out = corruption(name, severity, seed=1)(x)
            assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
            assert torch.equal(out, corruption(name, severity, seed=1)(x)), name  # repeatable
            distances.append((out - x).abs().mean().item())
        assert 0 < distances[0] < distances[-1], (name, distances)
    with pytest.raises(ValueError, match="unknown corruption 'fog'; valid: gaussian_noise, shot_noise"):
        check_corruptions(['contrast', 'fog'])
    with pytest.raises(ValueError, match='severity must be one of'):
        corruption('contrast', 6)


def test_mean_corruption_error_is_relative_to_the_twin():
    gcp = {'a': [10.0, 20.0], 'b': [5.0, 5.0]}
    twin = {'a': [20.0, 20.0], 'b': [10.0, 10.0]}
    assert corruption_errors(gcp, twin) == {'a': 75.0, 'b': 50.0}
    assert mean_corruption_error(gcp, twin) == 62.5
    assert mean_corruption_error(twin, twin) == 100.0


def test_compare_says_within_spread_unless_the_seeds_separate_the_models():
    apart = compare([80.0, 81.0, 82.0], [75.0, 76.5, 77.0])
    assert apart['verdict'] == 'GCP better' and apart['diff']['mean'] == pytest.approx(14.5 / 3)
    assert apart['gcp']['min'] == 80.0 and apart['twin']['max'] == 77.0
    assert compare([0.1, 0.2, 0.1], [0.5, 0.6, 0.55], better='lower')['verdict'] == 'GCP better'
    assert compare([0.5, 0.6, 0.55], [0.1, 0.2, 0.1], better='lower')['verdict'] == 'GCP worse'
    assert compare([77.6, 76.6, 78.0], [73.4, 77.4, 76.0])['verdict'] == 'within spread'
    assert compare([77.6], [73.4])['verdict'] == 'one seed: no spread'
    with pytest.raises(ValueError, match='same number'):
        compare([1.0, 2.0], [1.0])


def test_no_verdict_from_two_seeds_or_from_differences_without_spread():
    """Accuracy on 64 test images moves in steps of 1/64: two seeds 3 images apart each have no spread to judge."""
    step = 100 / 64
    same_gap = compare([49 * step, 51 * step], [46 * step, 48 * step])
    assert same_gap['diff']['mean'] == pytest.approx(3 * step)
    assert same_gap['verdict'] == NO_SPREAD and math.isnan(same_gap['diff']['ci95'])
    three = compare([49 * step, 51 * step, 40 * step], [46 * step, 48 * step, 37 * step])
    assert three['verdict'] == NO_SPREAD and math.isnan(three['diff']['ci95']) and math.isnan(three['diff']['p'])
    two = compare([80.0, 81.0], [70.0, 72.0])  # far apart, but two seeds make no interval to trust
    assert two['verdict'] == NOT_ENOUGH_SEEDS == 'not enough seeds to tell (a verdict needs 3)'
    assert two['diff']['ci95'] == pytest.approx(t_quantile(0.975, 1) * math.sqrt(0.5) / math.sqrt(2))
    holm([same_gap, two, three])  # nothing to adjust: the reasons stay
    assert (same_gap['verdict'], two['verdict']) == (NO_SPREAD, NOT_ENOUGH_SEEDS)
    table = format_summary([('test acc after epoch 1 (%)', same_gap), ('test acc after epoch 2 (%)', two)],
                           ('resnet18_isqrt', 'resnet18'), test_size=64)
    cells = [c.strip() for c in table[2].split('|')]
    assert cells[3:] == ['+4.69', '-', NO_SPREAD]
    assert f"+9.5 ± {two['diff']['ci95']:.2g}" in table[3]
    assert table[-1] == 'accuracy resolution: one test image is 1.56 % (100 / 64 test images)'


@pytest.mark.parametrize('df, quantile', [(1, 12.7062047), (2, 4.3026527), (4, 2.7764451), (30, 2.0422725),
                                          (100, 1.9839715), (1e7, 1.9599640)])
def test_t_quantiles_are_computed_exactly(df, quantile):
    assert t_quantile(0.975, df) == pytest.approx(quantile, abs=5e-7)
    assert t_cdf(t_quantile(0.975, df), df) == pytest.approx(0.975, abs=1e-12)
    assert t_quantile(0.025, df) == -t_quantile(0.975, df)


def test_t_distribution_against_its_closed_forms():
    """df 1 is Cauchy, F(t) = 1/2 + atan(t) / pi; df 2 has F(t) = 1/2 + t / (2 sqrt(2 + t^2))."""
    for t in (-3.0, -0.4, 0.0, 0.7, 2.5, 40.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-13)
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-13)
    assert t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-12)
    with pytest.raises(ValueError, match='0 < p < 1'):
        t_quantile(1.0, 3)


def test_paired_p_value_and_holm_adjustment():
    """Differences 1, 2, 3: t = 2 sqrt(3), df 2, two-sided p = 1 - t / sqrt(2 + t^2)."""
    c = compare([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])
    t = 2 * math.sqrt(3)
    assert c['diff']['p'] == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)
    assert c['verdict'] == 'within spread'  # p = 0.074
    rows = [dict(diff=dict(p=p, mean=m), better=b, verdict='') for p, m, b in
            ((0.01, 1.0, 'higher'), (0.04, -1.0, 'higher'), (0.03, 1.0, 'lower'), (0.004, 1.0, 'lower'))]
    holm(rows)
    # sorted 0.004, 0.01, 0.03, 0.04 -> 4 x 0.004, 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 0.04)
    assert [r['diff']['p_holm'] for r in rows] == pytest.approx([0.03, 0.06, 0.06, 0.016])
    assert [r['verdict'] for r in rows] == ['GCP better', 'within spread', 'within spread', 'GCP worse']


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> str:
    return str(write_fashion_mnist(tmp_path_factory.mktemp('fashion-mnist'), n_train=64, n_test=32))


TINY = ['--train-size', '64', '--test-size', '32', '--img-size', '32', '--width', '0.125', '--gcp-dim', '8',
        '--batch-size', '32', '--epochs', '1', '--steps', '3', '--probe-every', '1', '--ladder-lrs', '0.1',
        '--corruptions', 'gaussian_noise', 'jpeg']


def _without_times(seed: dict) -> dict:
    """A seed's results without its timings, which vary from run to run."""
    text = json.dumps(seed)
    data = json.loads(text)
    for history in [data['history']] + [r['epochs'] for r in data['ladder']]:
        for epoch in history:
            for key in ('gcp', 'twin'):
                epoch[key].pop('seconds')
    return data


def test_analyze_runs_repeats_with_a_seed_and_reports_spread(data_dir, tmp_path, capsys):
    out_dir = tmp_path / 'analysis'
    argv = ['analyze', '--data-dir', data_dir, *TINY, '--seeds', '0', '0', '1', '--out-dir', str(out_dir)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    result = json.loads((out_dir / 'analysis.json').read_text())
    seeds = [_without_times(s) for s in result['seeds']]
    assert [s['seed'] for s in seeds] == [0, 0, 1]
    assert seeds[0] == seeds[1]  # the same seed, the same numbers
    assert seeds[0]['probes'] != seeds[2]['probes'] and seeds[0]['history'] != seeds[2]['history']
    probes = seeds[0]['probes']['gcp']
    assert [p['step'] for p in probes] == [0, 1] and all(len(p['loss']) == 3 for p in probes)
    assert set(seeds[0]['corruptions']['gcp']['errors']) == {'gaussian_noise', 'jpeg'}
    assert all(len(e) == 5 for e in seeds[0]['corruptions']['twin']['errors'].values())
    summary = result['summary']
    assert summary['mCE (twin = 100 %)']['twin']['mean'] == 100.0
    assert all(c['gcp']['n'] == 3 and c['verdict'] in ('GCP better', 'GCP worse', 'within spread', RAW)
               for c in summary.values())
    assert 'verdict' in out and 'LR ladder lr 0.1: acc (%)' in out and 'beta-smoothness, activations' in out
    # the verdicts stand on the scale-free measures; the raw widths are shown but not judged
    assert summary['loss band width, activations']['verdict'] == RAW and \
        'p_holm' in summary['loss band / first-order prediction, activations']['diff']
    assert summary['max gradient change / ||g||, activations']['per_seed']['gcp'][0] == pytest.approx(
        sum(p['grad_change_rel'] for p in probes) / len(probes))
    assert result['trunk'] == dict(shared=126, total=126, paired=True, missing=[], extra=[],
                                   note='same initial trunk (126 of 126 trunk tensors shared)')
    assert 'same initial trunk (126 of 126 trunk tensors shared)' in out
    # the LR ladder's drop from its reference rung, the main run, per model
    drop = summary['LR ladder lr 0.1: drop from reference (points)']['per_seed']['twin']
    assert drop == pytest.approx([s['history'][-1]['twin']['test_acc']
                                  - s['ladder'][0]['epochs'][-1]['twin']['test_acc'] for s in seeds])
    assert 'accuracy resolution: one test image is 3.12 % (100 / 32 test images)' in out
    assert 'Holm-adjusted' in out
    png = out_dir / 'analysis.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 20000


def test_analyze_reads_a_timm_image_folder(tmp_path, capsys):
    """The ImageNet-scale path: timm's create_dataset on an ImageFolder (train/, validation/), RGB, its classes."""
    root = write_image_folder(tmp_path / 'images', per_class=8, size=40)
    out_dir = tmp_path / 'analysis'
    assert cli.main(['analyze', '--dataset', 'folder', '--data-dir', str(root), '--img-size', '32', '--workers', '0',
                     '--width', '0.125', '--gcp-dim', '8', '--batch-size', '8', '--epochs', '1', '--steps', '2',
                     '--seeds', '0', '--ladder-lrs', '--corruptions', 'contrast', '--out-dir', str(out_dir)]) == 0
    result = json.loads((out_dir / 'analysis.json').read_text())
    assert result['model_kwargs']['gcp']['in_chans'] == 3 and result['model_kwargs']['twin']['num_classes'] == 2
    assert 'ladder' not in result['seeds'][0] and result['summary']['mCE (twin = 100 %)']['verdict'] == \
        'one seed: no spread'
    assert '16 training and 16 test images at 32 px' in capsys.readouterr().out


@pytest.mark.parametrize('argv, expected', [
    (['--split', 'layer9'], "unknown split point 'layer9' for GCPResNet; valid: stem, act1, layer1"),
    (['--steps', '0'], 'the step range is empty'),
    (['--step-range', '5', '1'], '0 < start <= stop'),
    (['--corruptions', 'fog'], "unknown corruption 'fog'; valid: gaussian_noise"),
    (['--baseline-kwargs', 'num_classes=5'], "'resnet18_isqrt' has 10, 'resnet18' has 5"),
    (['--model', 'resnet18'], "'resnet18' has no plain twin in timm; name one with --baseline"),
    (['--seeds'], 'expected at least one argument'),
    (['--model', 'resnet18_nope'], "--model 'resnet18_nope' is not a timm model"),
    (['--data-dir', '/no/such/folder'], "--data-dir '/no/such/folder': no such folder"),
    (['--model-kwargs', 'gcp_dim=x'], 'must be an int, got str'),
    (['--model', 'gcp_isqrt', '--baseline', 'resnet18'], 'gcp_isqrt needs backbone=<timm model name>'),
    (['--workers', '-1'], '--workers must be at least 0, got -1'),
    (['--model-kwargs', 'gcp_dim=None'], '--model-kwargs gcp_dim=None: timm.create_model drops None arguments, so '
                                         'gcp_dim would silently keep its default; for no reduction pass gcp_dim=0'),
    (['--baseline-kwargs', 'drop_rate=None'], '--baseline-kwargs drop_rate=None: timm.create_model drops None '
                                              'arguments, so drop_rate would silently keep its default; give '
                                              'drop_rate a value, or leave it out'),
    (['--gcp-dim', '-1'], "--gcp-dim must be 0 (no reduction: the covariance of the trunk's channels) or at least 2, "
                          'got -1'),
])
def test_analyze_bad_input_is_named_before_any_training(argv, expected, data_dir, tmp_path, capsys, monkeypatch):
    from timm_gcp.analysis import run

    def never(*args, **kwargs):
        raise AssertionError('training started')

    monkeypatch.setattr(run, 'analyze_seed', never)
    try:
        rc = cli.main(['analyze', '--data-dir', data_dir, *TINY, *argv, '--out-dir', str(tmp_path / 'out')])
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    assert rc == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('argv, expected', [
    (['--baseline', 'vit_tiny_patch16_224'],
     "timm-gcp analyze: error: --baseline vit_tiny_patch16_224 cannot take the data's 1-channel images at "
     "--img-size 32: Input height (32) doesn't match model (224). (vit_tiny_patch16_224 is built for 224x224 "
     "inputs only: pass --baseline-kwargs img_size=32)\n"),
    (['--model', 'gcp_isqrt', '--model-kwargs', 'backbone=resnet18', '--baseline', 'resnet18', '--img-size', '16'],
     "timm-gcp analyze: error: --model gcp_isqrt cannot take the data's 1-channel images at --img-size 16: input "
     "16x16 px is too small for backbone 'resnet18'"),
    (['--baseline-kwargs', 'in_chans=3'],
     "timm-gcp analyze: error: --baseline resnet18 is given in_chans=3, but the data has 1 channel(s): leave "
     "in_chans out of --baseline-kwargs\n"),
])
def test_analyze_checks_the_input_size_before_any_weights_or_output(argv, expected, data_dir, tmp_path, capsys,
                                                                  monkeypatch):
    from timm_gcp.analysis import run

    def never(*args, **kwargs):
        raise AssertionError('weights created')

    monkeypatch.setattr(run, 'create_pair', never)
    assert cli.main(['analyze', '--data-dir', data_dir, *TINY, *argv, '--out-dir', str(tmp_path / 'out')]) == 2
    captured = capsys.readouterr()
    assert captured.out == '' and captured.err.startswith(expected)


def test_gcp_dim_0_pools_the_trunks_channels_unreduced(data_dir):
    """--gcp-dim 0 is no reduction (docs/architectures.md, "Head arguments"): the head pools the trunk's 64 channels."""
    from timm_gcp.analysis.run import add_arguments, prepare

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(['--data-dir', data_dir, *TINY, '--gcp-dim', '0'])
    names, kwargs, _, _ = prepare(args)
    assert kwargs[0]['gcp_dim'] == 0
    gcp = timm.create_model(names[0], device='meta', **kwargs[0])
    assert gcp.num_features == 64 and gcp.head_hidden_size == 64 * 65 // 2


def test_analyze_a_folder_dataset_without_its_folder_is_named(tmp_path, capsys):
    assert cli.main(['analyze', '--dataset', 'imagefolder', *TINY, '--out-dir', str(tmp_path / 'out')]) == 2
    assert capsys.readouterr().err == (
        "timm-gcp analyze: error: --dataset 'imagefolder' is read from a folder (timm's ImageFolder or tar reader): "
        "pass --data-dir DIR, or name another data set: fashion-mnist, torch/NAME, hfds/NAME\n")


def test_check_pair_leaves_a_model_that_cannot_run_on_the_meta_device_to_the_run(monkeypatch):
    """`.item()` in a forward fails on the meta device whatever the input: no refusal from that."""
    from timm_gcp.analysis.options import check_pair

    class ItemNet(nn.Module):
        pretrained_cfg = dict(input_size=(1, 8, 8))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean((2, 3)) * x.abs().max().item()

    monkeypatch.setattr(timm, 'create_model', lambda name, device=None, **kwargs: ItemNet())
    check_pair(('a', 'b'), ({}, {}), 1, 8)
    monkeypatch.setattr(ItemNet, 'forward', lambda self, x: x.view(3, -1))  # a real shape error still counts
    with pytest.raises(UsageError, match="--model a cannot take the data's 1-channel images at --img-size 8: "):
        check_pair(('a', 'b'), ({}, {}), 1, 8)


def _prepared(data_dir: str, *argv: str):
    from timm_gcp.analysis.run import add_arguments, prepare

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(['--data-dir', data_dir, *TINY, *argv])
    return args, prepare(args)


def test_a_generic_model_on_a_resnet_gets_its_twins_width_and_trunk(data_dir):
    """gcp_isqrt on resnet18 is a GCP ResNet: the small trunk (and reduction) of its twin, every trunk tensor shared."""
    args, (names, kwargs, _, share) = _prepared(data_dir, '--model', 'gcp_isqrt', '--model-kwargs', 'backbone=resnet18',
                                                  '--img-size', '64')
    assert names == ('gcp_isqrt', 'resnet18')  # the backbone's plain model is the default twin
    assert kwargs[0]['channels'] == kwargs[1]['channels'] == (8, 16, 32, 64) and kwargs[0]['gcp_dim'] == 8
    assert share.paired and share.shared == 126
    assert args.step_range == (0.1, 75.0)


def test_step_range_defaults_to_the_originals_for_the_trunk(data_dir):
    from timm_gcp.analysis.run import _check_args, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for argv, expected in ((['--model', 'mobilenetv2_100_isqrt'], (0.045, 1.5)),
                           (['--model', 'gcp_dropcov', '--model-kwargs', 'backbone=mobilenetv2_100'], (0.045, 1.5)),
                           (['--model', 'resnet18_isqrt'], (0.1, 75.0)),
                           (['--model', 'mobilenetv2_100_isqrt', '--step-range', '1', '2'], (1.0, 2.0))):
        args = parser.parse_args(['--data-dir', data_dir, *argv])
        _check_args(args)
        assert tuple(args.step_range) == expected, argv


def test_a_pair_that_is_not_twins_is_refused_unless_unpaired(data_dir, tmp_path, capsys):
    argv = ['analyze', '--data-dir', data_dir, *TINY, '--baseline', 'resnet34', '--seeds', '0', '--ladder-lrs',
            '--corruptions', '--steps', '2', '--probe-every', '2', '--out-dir', str(tmp_path / 'out')]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        "timm-gcp analyze: error: --model resnet18_isqrt and --baseline resnet34 are not twins: the GCP model gives "
        "126 of the twin's 222 trunk tensors a tensor of the same name and shape (the first without one: "
        "'layer1.2.conv1.weight'), so they would not start from the same trunk. Choose a baseline with the same "
        "trunk (and width: its kwargs), or pass --unpaired to compare them anyway\n")
    # a deeper GCP trunk than the twin's gives the twin all its tensors, and is no twin either
    assert cli.main(['analyze', '--data-dir', data_dir, *TINY, '--model', 'gcp_isqrt', '--model-kwargs',
                     'backbone=resnet34', '--baseline', 'resnet18', '--img-size', '64']) == 2
    assert ("gives 126 of the twin's 126 trunk tensors a tensor of the same name and shape, and has 96 trunk tensors "
            "the twin lacks (the first: 'backbone.layer1.2.conv1.weight')") in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()
    assert cli.main([*argv, '--unpaired']) == 0
    out = capsys.readouterr().out
    note = "unpaired: 126 of the twin's 222 trunk tensors shared"
    assert out.count(note) == 2  # the header and the table's title
    assert f'resnet18_isqrt vs resnet34 over 1 seed(s), {note}' in out
    trunk = json.loads((tmp_path / 'out' / 'analysis.json').read_text())['trunk']
    assert (trunk['shared'], trunk['total'], trunk['paired'], trunk['note']) == (126, 222, False, note)


def test_a_baseline_that_cannot_take_the_input_is_refused_before_training(data_dir, tmp_path, capsys, monkeypatch):
    """The GCP model given its img_size, the twin not: the twin is named, before any weights."""
    from timm_gcp.analysis import run

    monkeypatch.setattr(run, 'create_pair', lambda *args: pytest.fail('weights created'))
    assert cli.main(['analyze', '--data-dir', data_dir, *TINY, '--model', 'deit_tiny_patch16_224_isqrt',
                     '--model-kwargs', 'img_size=32', '--baseline', 'deit_tiny_patch16_224']) == 2
    assert capsys.readouterr().err.startswith(
        "timm-gcp analyze: error: --baseline deit_tiny_patch16_224 cannot take the data's 1-channel images at "
        "--img-size 32: Input height (32) doesn't match model (224).")
