"""`timm-gcp probe` (docs/probing.md, "The probe comparison"): a GCP probe and timm's linear probe on one frozen trunk.

On the tiny Fashion-MNIST stand-in (tests/helpers/fashion_mnist.py): the command end to end, the trunk
bit-identical after probing, each probe training its own head and nothing else, the check that would
catch a trunk that moved, and the errors. Nothing is downloaded.
"""
import contextlib
import io
import json

import pytest
import timm
import torch

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp import cli
from timm_gcp.analysis import probe
from timm_gcp.analysis.spread import NO_SPREAD
from timm_gcp.training.data import FashionMNISTData
from timm_gcp.training.fashion_mnist import load_fashion_mnist
from timm_gcp.training.loop import OptimConfig, train_pair

from tests.helpers.fashion_mnist import write_fashion_mnist

TINY = ['--width', '0.125', '--trunk-train-size', '48', '--train-size', '48', '--test-size', '32',
        '--trunk-epochs', '1', '--epochs', '2', '--batch-size', '16', '--img-size', '32', '--gcp-dim', '8']


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> str:
    return str(write_fashion_mnist(tmp_path_factory.mktemp('fashion-mnist')))  # 160 training, 80 test images


@pytest.fixture(scope='module')
def tiny_run(data_dir, tmp_path_factory):
    """One run of the command on three seeds: its stdout and its JSON."""
    out = tmp_path_factory.mktemp('probe')
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert cli.main(['probe', '--data-dir', data_dir, '--out-dir', str(out), *TINY]) == 0
    return text.getvalue(), json.loads((out / 'probe.json').read_text()), out


def test_the_command_compares_both_probes_over_the_seeds(tiny_run):
    text, result, out = tiny_run
    assert (out / 'probe.png').stat().st_size > 0
    assert result['models'] == dict(gcp='gcp_isqrt', twin='resnet18')
    assert [s['seed'] for s in result['seeds']] == [0, 1, 2]
    rows = result['summary']
    assert list(rows) == ['test acc after probe epoch 1 (%)', 'test acc after probe epoch 2 (%)']
    last = rows['test acc after probe epoch 2 (%)']
    per_seed = [s['history'][-1]['gcp']['test_acc'] for s in result['seeds']]
    assert last['per_seed']['gcp'] == per_seed
    assert last['diff']['mean'] == pytest.approx(
        sum(per_seed) / 3 - sum(s['history'][-1]['twin']['test_acc'] for s in result['seeds']) / 3)
    assert last['verdict'] in ('GCP better', 'GCP worse', 'within spread', NO_SPREAD)
    assert 'p_holm' in last['diff'] or last['verdict'] == NO_SPREAD  # the table's rows are judged together
    header = next(line for line in text.splitlines() if line.startswith('metric'))
    assert '| gcp_isqrt (GCP probe)' in header and '| resnet18 (linear probe)' in header
    assert '| GCP probe - linear probe (95 % CI)' in header
    # the per-seed table: the trunk's own classifier, both probes, their difference
    for s in result['seeds']:
        gcp, linear = s['history'][-1]['gcp']['test_acc'], s['history'][-1]['twin']['test_acc']
        row = f"| {s['seed']} | {s['trunk']['test_acc']:.2f} | {linear:.2f} | {gcp:.2f} | {gcp - linear:+.2f} |"
        assert row in text
    # head sizes by hand: 64 -> 8 reduction (conv without bias, BN), 8 * 9 / 2 = 36 features -> 10 classes; 64 -> 10
    assert result['seeds'][0]['head_params'] == dict(gcp=64 * 8 + 2 * 8 + 36 * 10 + 10, twin=64 * 10 + 10)
    assert 'the GCP head is larger' in text and 'bit-identical after probing in every seed' in text


def _trained_trunk():
    torch.manual_seed(0)
    trunk = timm.create_model('resnet18', in_chans=1, num_classes=10, **probe.trunk_kwargs('resnet18', 0.125, {}))
    with torch.no_grad():  # BatchNorm statistics of a trained trunk, unlike their initial 0 and 1
        for m in trunk.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return trunk


def test_probing_changes_no_trunk_tensor_and_trains_each_head_alone(data_dir):
    trunk = _trained_trunk()
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    gcp_kwargs = dict(backbone='resnet18', gcp_dim=8, in_chans=1, num_classes=10,
                      **probe.trunk_kwargs('resnet18', 0.125, {}))
    gcp, linear = probe.build_probes(trunk, 'gcp_isqrt', gcp_kwargs, seed=0)
    # the GCP probe's backbone holds the trunk's tensors; the linear probe's classifier is a fresh one
    assert not probe.changed_tensors(gcp.backbone.state_dict(), probe.trunk_state(trunk))
    assert not torch.equal(linear.fc.weight, trunk.fc.weight)
    start = {key: {k: v.clone() for k, v in m.state_dict().items()} for key, m in (('gcp', gcp), ('linear', linear))}
    train, test = load_fashion_mnist(data_dir, 'train'), load_fashion_mnist(data_dir, 'test')
    data = FashionMNISTData(train, test, 32, 16, 32, 16, seed=0)
    train_pair(('gcp_isqrt', 'resnet18'), (gcp, linear), data, 1, OptimConfig(), torch.Generator().manual_seed(0),
               rows=False)
    trunk_keys = set(probe.trunk_state(trunk))
    for key, model, head in (('gcp', gcp, 'head.'), ('linear', linear, 'fc.')):
        state = model.state_dict()
        changed = {k for k, v in state.items() if not torch.equal(v, start[key][k])}
        params = {k for k, _ in model.named_parameters()}
        # every head parameter trained; nothing else changed but the head's own BatchNorm statistics
        assert {k for k in params if k.startswith(head)} <= changed
        assert all(k.startswith(head) for k in changed), sorted(changed)
        assert {k for k, p in model.named_parameters() if p.requires_grad} == {k for k in params if k.startswith(head)}
    assert not probe.changed_tensors(gcp.backbone.state_dict(), {k: before[k] for k in trunk_keys})
    assert not probe.changed_tensors(linear.state_dict(), {k: before[k] for k in trunk_keys})


def test_changed_tensors_sees_one_bit():
    reference = dict(w=torch.ones(3), n=torch.tensor(4))
    assert probe.changed_tensors(dict(w=torch.ones(3), n=torch.tensor(4)), reference) == []
    assert probe.changed_tensors(dict(w=torch.ones(3).nextafter(torch.tensor(2.0)), n=torch.tensor(4)),
                                 reference) == ['w']
    assert probe.changed_tensors(dict(w=torch.ones(3)), reference) == ['n']
    assert probe.changed_tensors(dict(w=torch.ones(3, dtype=torch.float64), n=torch.tensor(4)), reference) == ['w']


def test_a_trunk_that_moves_fails_the_command(data_dir, tmp_path, monkeypatch, capsys):
    """Without freeze_trunk the trunk trains with the heads: the command's own check names it and exits 1."""
    monkeypatch.setattr(probe, 'freeze_trunk', lambda model: None)
    argv = ['probe', '--data-dir', data_dir, '--out-dir', str(tmp_path / 'out'), '--seeds', '0', *TINY]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith('timm-gcp probe: error: the frozen trunk of the GCP probe changed in training: ')
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('argv, expected', [
    (['--trunk', 'resnet18_isqrt'], "--trunk 'resnet18_isqrt' is a GCP model: name timm's plain model"),
    (['--trunk', 'resnet18x'], "--trunk 'resnet18x' is not a timm model"),
    (['--seeds', '0', '0'], '--seeds 0 0: a seed repeated would count one run twice'),
    (['--gcp-dim', '1'], '--gcp-dim must be 0 (no reduction) or at least 2, got 1'),
    (['--epochs', '0'], '--epochs must be at least 1, got 0'),
    (['--lr', '0'], '--lr, --trunk-lr and --width must be positive'),
    (['--trunk-kwargs', 'drop_rate=None'], '--trunk-kwargs drop_rate=None: timm.create_model drops None'),
    (['--trunk-kwargs', 'num_classes=5'], '--trunk-kwargs num_classes=...: the command sets it'),
    (['--trunk-kwargs', 'nope=1'], "--trunk resnet18: ResNet.__init__() got an unexpected keyword argument 'nope'"),
    (['--gcp-dim', '512'], '--trunk resnet18: '),  # wider than the trunk's 64 channels, found on the meta device
    (['--train-size', '81'], '--train-size 81: the data has 80 images for it'),
    (['--test-size', '81'], '--test-size 81: the data has 80 images for it'),
])
def test_bad_options_are_named_before_any_work(argv, expected, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(probe, 'train_trunk', lambda *a, **k: pytest.fail('trained despite a bad option'))
    base = ['probe', '--data-dir', data_dir, '--out-dir', str(tmp_path / 'out'), *TINY]
    assert cli.main([*base, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith('timm-gcp probe: error: ') and expected in err and err.count('\n') == 1, err
    assert not (tmp_path / 'out').exists()


def test_missing_data_and_a_file_as_out_dir_are_named(tmp_path, data_dir, capsys):
    assert cli.main(['probe', '--data-dir', str(tmp_path / 'none')]) == 2
    assert f"--data-dir '{tmp_path / 'none'}': no such folder" in capsys.readouterr().err
    (tmp_path / 'file').write_text('')
    assert cli.main(['probe', '--data-dir', data_dir, '--out-dir', str(tmp_path / 'file')]) == 2
    assert f"--out-dir '{tmp_path / 'file'}': is a file, not a folder" in capsys.readouterr().err
