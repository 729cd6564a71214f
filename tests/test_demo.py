"""`timm-gcp demo` on a tiny configuration, and the Fashion-MNIST idx reader it uses. Nothing is downloaded."""
import json
import math
import re

import numpy as np
import pytest
import timm
import torch

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp import cli
from timm_gcp.training.fashion_mnist import DEBIAN_DIR, find_fashion_mnist, load_fashion_mnist, read_idx, write_idx
from timm_gcp.demo.side_by_side import build_models
from timm_gcp.models.registry import baseline_name

from tests.helpers.fashion_mnist import debian_installed, write_fashion_mnist


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> str:
    """Debian's Fashion-MNIST when installed, else a tiny fixture in the same format."""
    if not debian_installed():
        return str(write_fashion_mnist(tmp_path_factory.mktemp('fashion-mnist')))
    return DEBIAN_DIR


@pytest.mark.parametrize('gz', [True, False])
def test_idx_round_trip(tmp_path, gz):
    folder = write_fashion_mnist(tmp_path, n_train=12, n_test=5, gz=gz)
    images, labels = load_fashion_mnist(str(folder), 'train')
    assert images.shape == (12, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (12,) and labels.dtype == torch.int64 and int(labels.max()) < 10
    assert load_fashion_mnist(str(folder), 'test')[0].shape == (5, 28, 28)
    assert find_fashion_mnist(str(folder)) == str(folder)


def test_idx_errors_name_the_file(tmp_path):
    bad = tmp_path / 'bad-idx3-ubyte'
    bad.write_bytes(b'\x12\x34\x56\x78')
    with pytest.raises(ValueError, match='bad-idx3-ubyte'):
        read_idx(str(bad))
    short = tmp_path / 'short'
    write_idx(str(short), np.zeros((2, 3), dtype=np.uint8))
    short.write_bytes(short.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r'header says \(2, 3\)'):
        read_idx(str(short))
    with pytest.raises(ValueError, match='t10k-labels-idx1-ubyte'):
        find_fashion_mnist(str(tmp_path))


def test_real_fashion_mnist_when_installed():
    if not debian_installed():
        pytest.skip(f'Debian dataset-fashion-mnist is not installed ({DEBIAN_DIR})')
    images, labels = load_fashion_mnist(DEBIAN_DIR, 'test')
    assert images.shape == (10000, 28, 28)
    assert torch.bincount(labels).tolist() == [1000] * 10


def test_twin_is_timms_plain_model_with_the_same_initial_trunk():
    assert baseline_name('resnet50_isqrt_d256') == 'resnet50' and baseline_name('resnet18_dropcov') == 'resnet18'
    gcp, twin = build_models('resnet18_dropcov', 'resnet18', width=0.25, gcp_dim=8, seed=3)
    assert type(twin).__name__ == 'ResNet' and twin.global_pool.pool_type == 'avg'
    twin_state = twin.state_dict()
    trunk = [k for k in gcp.state_dict() if k.startswith(('conv1', 'bn1', 'layer'))]
    assert trunk and all(torch.equal(gcp.state_dict()[k], twin_state[k]) for k in trunk)
    assert gcp.conv1.weight.shape[1] == 1 and gcp.layer1[0].conv1.weight.shape[0] == 16  # 1 channel, width 0.25


def _table_rows(out: str):
    """(epoch, [gcp train loss, test loss, acc], [twin ...]) of each table row."""
    rows = []
    for line in out.splitlines():
        m = re.match(r'^\s+(\d+)\s+(.*)$', line)
        if m and '|' in line:
            cells = [re.findall(r'[-\d.]+|nan|inf', block) for block in m.group(2).split('|')]
            rows.append((int(m.group(1)), [float(c) for c in cells[0][:3]], [float(c) for c in cells[1][:3]]))
    return rows


@pytest.mark.slow  # trains two models for two epochs
def test_demo_tiny_run_prints_table_and_writes_curves(data_dir, tmp_path, capsys):
    out_dir = tmp_path / 'demo'
    threads = torch.get_num_threads()
    rc = cli.main(['demo', '--data-dir', data_dir, '--epochs', '2', '--train-size', '128', '--test-size', '64',
                   '--img-size', '32', '--width', '0.25', '--gcp-dim', '8', '--batch-size', '32', '--seed', '1',
                   '--probe-every', '3', '--steps', '4', '--ladder-lrs', '0.1', '--out-dir', str(out_dir)])
    assert rc == 0
    assert torch.get_num_threads() == threads  # the demo's single thread is not left behind
    out = capsys.readouterr().out
    assert 'resnet18_isqrt (GCP)' in out and 'resnet18 (average pool)' in out
    rows = _table_rows(out)
    assert [r[0] for r in rows] == [1, 2]
    for _, gcp, twin in rows:
        for train_loss, test_loss, acc in (gcp, twin):
            assert math.isfinite(train_loss) and math.isfinite(test_loss) and 0.0 <= acc <= 100.0
    png = out_dir / 'curves.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 5000
    history = json.loads((out_dir / 'history.json').read_text())
    assert history['models'] == {'gcp': 'resnet18_isqrt', 'twin': 'resnet18'}
    assert [h['epoch'] for h in history['epochs']] == [1, 2]
    assert history['epochs'][1]['gcp']['test_acc'] == pytest.approx(rows[1][1][2], abs=0.01)
    # the landscape band (a probe every 3 of the 4 updates per epoch) and a one-rung LR ladder beside the curves
    for key in ('gcp', 'twin'):
        assert [p['step'] for p in history['probes'][key]] == [0, 3, 6]
        assert all(len(p['loss']) == 4 and math.isfinite(p['beta']) for p in history['probes'][key])
    assert [r['lr'] for r in history['ladder']] == [0.1] and len(history['ladder'][0]['epochs']) == 1
    assert 'LR ladder lr 0.1: resnet18_isqrt' in out
    # the ladder's reference rung is the main run; the drop from it per model
    reference = history['ladder_reference']
    assert reference['test_acc']['gcp'] == history['epochs'][-1]['gcp']['test_acc'] and reference['epochs'] == 2
    drop = reference['test_acc']['twin'] - history['ladder'][0]['epochs'][-1]['twin']['test_acc']
    assert f'resnet18 {history["ladder"][0]["epochs"][-1]["twin"]["test_acc"]:.2f} % (drop from the main run ' \
        f'{drop:+.2f} points)' in out
    assert history['trunk']['paired'] and history['trunk']['shared'] == history['trunk']['total'] > 0
    # the probe's scale-free measures beside the raw ones, per model
    probes = history['probes']['twin']
    mean_rel = sum(p['loss_band_rel'] for p in probes) / len(probes)
    assert f'landscape, resnet18 (mean of 3 probes): loss band / first-order {mean_rel:.3g}, ' in out


@pytest.mark.parametrize('argv, expected', [
    (['--model', 'resnet18'], "--model 'resnet18' is not a GCP ResNet"),
    (['--model', 'resnet18_isqrt', '--baseline', 'resnet_nope'], "--baseline 'resnet_nope' is not a timm model"),
    (['--epochs', '0'], '--epochs must be at least 1'),
    (['--split', 'layer9'], "unknown split point 'layer9'"),
    (['--steps', '0'], 'the step range is empty'),
    (['--baseline', 'vit_tiny_patch16_224', '--img-size', '32'],
     "--baseline vit_tiny_patch16_224 cannot take the data's 1-channel images at --img-size 32: Input height (32) "
     "doesn't match model (224). (vit_tiny_patch16_224 is built for 224x224 inputs only: choose another baseline)"),
    (['--img-size', '8'],
     "--model resnet18_isqrt cannot take the data's 1-channel images at --img-size 8: GCP pooling got a 1x1 "
     "feature map"),
])
def test_demo_bad_options_are_named(argv, expected, tmp_path, capsys):
    assert cli.main(['demo', '--data-dir', str(tmp_path), *argv]) == 2
    assert expected in capsys.readouterr().err


def test_demo_takes_the_ms_models_it_lists(tmp_path, capsys):
    assert 'ms_resnet18_isqrt' in timm.list_models(module='gcp_resnet')
    # no data in tmp_path: a demo that accepts the model stops at the data, one that refuses it names why
    assert cli.main(['demo', '--model', 'ms_resnet18_isqrt', '--data-dir', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('timm-gcp demo: error: ') and 'lacks the Fashion-MNIST files' in err  # past the model


def test_demo_names_missing_data_files(tmp_path, capsys):
    assert cli.main(['demo', '--data-dir', str(tmp_path), '--out-dir', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and 'train-images-idx3-ubyte' in err
    assert not (tmp_path / 'out').exists()
