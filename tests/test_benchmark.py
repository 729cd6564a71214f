"""`timm-gcp bench`: baselines, FLOP counts against hand counts, the tables and their JSON, errors.

No timing assertions: the machine is shared and timings are noisy.
"""
import argparse
import contextlib
import io
import json
import os
import subprocess
from typing import Dict, List, Optional

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp import cli
from timm_gcp.measure import (
    MetaBuildError, MetaInputError, build_on_meta, count_flops, run_on_meta, saved_tensor_bytes)
from timm_gcp.bench import models as bench_models
from timm_gcp.bench.models import head_error, head_graph_breaks
from timm_gcp.models.registry import baseline_name

from tests.helpers import REPO

TINY = ['--batch-size', '2', '--img-size', '64', '--rounds', '1']


def _run_cli(argv: List[str], err: Optional[io.StringIO] = None) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err or io.StringIO()):
        assert cli.main(argv) == 0
    return out.getvalue()


def _tables(text: str) -> List[List[Dict[str, str]]]:
    """The markdown tables of `text`, each a list of {column: cell} rows."""
    tables, rows, header = [], None, None
    for line in text.splitlines() + ['']:
        if line.startswith('|') and header is None:
            header, rows = [c.strip() for c in line.strip('|').split('|')], []
        elif line.startswith('|---'):
            continue
        elif line.startswith('|'):
            rows.append(dict(zip(header, (c.strip() for c in line.strip('|').split('|')))))
        elif header is not None:
            tables.append(rows)
            header = None
    return tables


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """One CLI run on a tiny ResNet-18 pair: the printed tables and the JSON written beside them."""
    path = tmp_path_factory.mktemp('bench') / 'bench.json'
    err = io.StringIO()
    text = _run_cli(['bench', '--models', 'resnet18_isqrt', 'resnet18', *TINY, '--json', str(path)], err)
    return text, json.loads(path.read_text()), err.getvalue()


def test_baselines_come_from_the_names():
    assert baseline_name('resnet50_isqrt_d256') == 'resnet50'
    assert baseline_name('resnet101_dropcov') == 'resnet101'
    assert baseline_name('resnet50_isqrt.gcp_in1k') == 'resnet50'  # a tag changes nothing
    assert baseline_name('deit_small_patch16_224_isqrt') == 'deit_small_patch16_224'
    assert baseline_name('resnet50') is None  # a timm model is nobody's GCP twin
    assert baseline_name('vit_sot_small') is None  # an architecture of its own
    assert baseline_name('convnext_tiny_isqrt.fb_in22k') == 'convnext_tiny'  # a preset: its backbone
    assert baseline_name('gcp_isqrt') is None  # the generic models' twin is the backbone= given to bench


@pytest.mark.slow
def test_generic_model_is_measured_against_its_backbone():
    text = _run_cli(['bench', '--models', 'gcp_isqrt', '--model-kwargs', 'backbone=test_convnext', 'gcp_dim=8', *TINY])
    main, _ = _tables(text)
    assert [row['model'] for row in main] == ['test_convnext', 'gcp_isqrt']
    assert main[1]['baseline'] == 'test_convnext' and float(main[1]['FLOPs ratio'][:-1]) >= 1.0
    assert 'GCP model args backbone=test_convnext, gcp_dim=8' in text


@pytest.mark.slow
def test_tables_have_the_columns_and_ratio_rows(tiny_run):
    text, _, _ = tiny_run
    main, split = _tables(text)
    assert [row['model'] for row in main] == ['resnet18', 'resnet18_isqrt']  # baseline first
    assert list(main[0]) == [
        'model', 'baseline', 'params (M)', 'GFLOPs', 'infer (img/s)', 'train (img/s)', 'train mem (MiB)',
        'FLOPs ratio', 'infer time ratio', 'train time ratio', 'train mem ratio']
    base, gcp = main
    assert base['baseline'] == '-' and base['FLOPs ratio'] == '-'
    assert gcp['baseline'] == 'resnet18'
    for col in ('FLOPs ratio', 'infer time ratio', 'train time ratio', 'train mem ratio'):
        assert gcp[col].endswith('x') and float(gcp[col][:-1]) > 0
    assert float(gcp['FLOPs ratio'][:-1]) > 1.5  # the stride-1 last stage and the head
    assert list(split[0]) == [
        'model', 'head GFLOPs', 'backbone fwd (ms)', 'head fwd (ms)', 'head % of infer', 'backbone f+b (ms)',
        'head f+b (ms)', 'head % of train step', 'head error vs float64']
    assert 'saved_tensors_hooks' in text and 'interleaved rounds' in text


@pytest.mark.slow
def test_progress_goes_to_stderr_model_by_model(tiny_run):
    """A long run (a GPU's compile, a slow machine) says what it is doing: each model's creation and warm-up."""
    lines = tiny_run[2].splitlines()
    assert lines[0] == 'bench: 2 model(s) on cpu: resnet18, resnet18_isqrt'
    assert lines[1] == '[1/2] creating resnet18 (FLOPs, head error) ...'
    assert lines[2].startswith('[1/2] created resnet18: 11.69 M parameters, ')
    assert lines[3] == '[2/2] creating resnet18_isqrt (FLOPs, head error) ...'
    assert lines[5] == '[1/2] warming up resnet18: 1 training step(s) and one call of each timed operation ...'
    assert lines[6].startswith('[1/2] warmed up resnet18 (') and lines[8].startswith('[2/2] warmed up resnet18_isqrt')
    assert [line.split(':')[0] for line in lines[9:]] == [f'timed {kind}' for kind in bench_models.TIMINGS]


def test_json_holds_the_printed_numbers(tiny_run):
    text, data, _ = tiny_run
    main, split = _tables(text)
    assert data['config']['models'] == ['resnet18_isqrt', 'resnet18']
    by_name = {row['name']: row for row in data['models']}
    for table_row, split_row in zip(main, split):
        row = by_name[table_row['model']]
        assert table_row['params (M)'] == f"{row['params_m']:.2f}"
        assert table_row['GFLOPs'] == f"{row['gflops']:.2f}"
        assert table_row['infer (img/s)'] == f"{row['infer_img_s']:.1f}"
        assert table_row['train (img/s)'] == f"{row['train_img_s']:.1f}"
        assert table_row['train mem (MiB)'] == f"{row['train_memory_mib']:.0f}"
        assert split_row['head fwd (ms)'] == f"{row['times']['head_fwd']:.1f}"
        assert split_row['head % of train step'] == f"{100 * row['head_share_train']:.1f} %"
        assert split_row['head error vs float64'] == f"{row['head_error']:.1e}"
    gcp = by_name['resnet18_isqrt']
    assert main[1]['train time ratio'] == f"{gcp['ratios']['train']:.2f}x"
    assert gcp['ratios']['flops'] == pytest.approx(gcp['flops'] / by_name['resnet18']['flops'])
    assert gcp['ratios']['infer'] == pytest.approx(gcp['times']['infer'] / by_name['resnet18']['times']['infer'])


def test_json_alone_is_valid_json():
    text = _run_cli(['bench', '--models', 'resnet18', '--batch-size', '2', '--img-size', '32', '--rounds', '1',
                     '--json'])
    data = json.loads(text)
    assert [row['name'] for row in data['models']] == ['resnet18']
    assert data['models'][0]['ratios']['train'] is None


@pytest.mark.slow
def test_compile_runs_the_compiled_parts_and_counts_head_graph_breaks():
    # aot_eager traces forward and backward like inductor but skips code generation (minutes on this CPU)
    text = _run_cli(['bench', '--models', 'resnet18_dropcov', '--batch-size', '2', '--img-size', '32',
                     '--rounds', '1', '--compile', 'aot_eager'])
    assert 'torch.compile (aot_eager)' in text
    _, split = _tables(text)
    assert [(row['model'], row['head graph breaks']) for row in split] == [('resnet18', '0'), ('resnet18_dropcov', '0')]


@pytest.mark.parametrize('amp_dtype', ['bfloat16', 'float16'])
def test_amp_runs_and_counts_the_same_flops_as_float32(amp_dtype, tiny_run):
    # the options of tools/gpu_bench.sh's eager runs; the head's FLOPs are counted outside autocast
    text = _run_cli(['bench', '--models', 'resnet18_isqrt', '--batch-size', '2', '--img-size', '64', '--rounds', '1',
                     '--amp-dtype', amp_dtype, '--channels-last', '--iters', '1', '--json'])
    rows = {row['name']: row for row in json.loads(text)['models']}
    float32 = {row['name']: row for row in tiny_run[1]['models']}
    for name in ('resnet18', 'resnet18_isqrt'):
        assert rows[name]['flops'] == float32[name]['flops']
        assert rows[name]['head_flops'] == float32[name]['head_flops']
        # half-precision autocast costs the head precision, but the GCP math stays float32: far from 1
        assert 1e-5 < rows[name]['head_error'] < 0.05


@pytest.mark.slow
def test_gpu_bench_script_runs_on_the_cpu(tmp_path):
    # every run of tools/gpu_bench.sh with its options (bf16, channels_last, compile), on a small model
    env = dict(os.environ, BENCH_DEVICE='cpu', BENCH_COMPILE='aot_eager', BENCH_OUT=str(tmp_path))
    proc = subprocess.run(
        ['bash', str(REPO / 'tools' / 'gpu_bench.sh'), '--models', 'resnet18_isqrt', '--batch-size', '2',
         '--img-size', '32', '--rounds', '1', '--iters', '1'],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {p.name: json.loads(p.read_text()) for p in tmp_path.glob('*.json')}
    assert sorted(runs) == ['gpu_bench_compile.json', 'gpu_bench_eager.json', 'gpu_bench_eager_448.json',
                            'gpu_bench_eager_tf32.json']
    for data in runs.values():
        assert data['config']['amp_dtype'] == 'bfloat16' and data['config']['channels_last']
        assert [row['name'] for row in data['models']] == ['resnet18', 'resnet18_isqrt']
    assert runs['gpu_bench_compile.json']['config']['compile'] == 'aot_eager'
    assert [row['head_graph_breaks'] for row in runs['gpu_bench_compile.json']['models']] == [0, 0]
    # what it does as it goes: each run, each model's creation and warm-up
    for run in ('eager', 'eager_tf32', 'eager_448', 'compile'):
        assert f'] run {run} (at most 300 s): timm-gcp bench --device cpu' in proc.stderr
    assert proc.stderr.count('[2/2] warmed up resnet18_isqrt (') == 4


def test_gpu_bench_script_stops_a_run_that_takes_too_long(tmp_path):
    """Each run is bounded (BENCH_RUN_TIMEOUT): it is stopped with a line saying so, the next runs still run."""
    env = dict(os.environ, BENCH_DEVICE='cpu', BENCH_OUT=str(tmp_path), BENCH_RUN_TIMEOUT='1')
    proc = subprocess.run(['bash', str(REPO / 'tools' / 'gpu_bench.sh'), '--models', 'resnet18_isqrt'],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    for run in ('eager', 'eager_tf32', 'eager_448', 'compile'):
        assert f'] run {run}: stopped after 1 s (BENCH_RUN_TIMEOUT)\n' in proc.stderr
    assert proc.stderr.endswith('[gpu_bench] runs that did not finish: eager eager_tf32 eager_448 compile\n')
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('argv, expected', [
    (['--models', 'resnet18', '--tf32'], "--tf32 needs a CUDA device, not 'cpu'"),
    (['--models', 'resnet18', '--device', 'nonsense'], '--device: Expected one of cpu'),
    (['--models', 'resnet18', '--threads', '-1'], '--threads and --warmup must be at least 0, got -1 and 1'),
    (['--models', 'resnet18', '--iters', '0'], '--iters must be at least 1, got 0'),
    (['--models', 'resnet18', '--compile', 'nosuch'], "--compile 'nosuch': not a torch.compile backend"),
    (['--models', 'resnet18_isqrt', '--model-kwargs', 'gcp_dim=x'], 'resnet18_isqrt: dim must be an int'),
    (['--models', 'resnet18', '--json', 'no/such/folder/out.json'], "--json 'no/such/folder/out.json': its folder"),
    (['--models', 'resnet18', '--device', 'cuda'],
     "--device is 'cuda', but CUDA is not available here: pass --device cpu"),
    (['--models', 'gcp_isqrt'], 'gcp_isqrt: gcp_isqrt needs backbone=<timm model name>: pass it with --model-kwargs '
                                'backbone=NAME (e.g. backbone=convnext_tiny, then timed against convnext_tiny), or '
                                'name a preset that has its backbone, e.g. convnext_tiny_isqrt, convnext_tiny_dropcov'),
    (['--models', 'gcp_isqrt', '--model-kwargs', 'backbone=resnet_nope'], 'gcp_isqrt: unknown timm backbone'),
    (['--models', 'resnet18_isqrt', '--model-kwargs', 'gcp_dim=None'],
     '--model-kwargs gcp_dim=None: timm.create_model drops None arguments, so gcp_dim would silently keep its '
     'default; for no reduction pass gcp_dim=0'),
    (['--models', 'resnet18_isqrt', '--model-kwargs', 'num_classes=0'],
     'resnet18_isqrt has no classifier (num_classes=0): bench times a training step on its logits; leave '
     'num_classes out of --model-kwargs'),
    (['--models', 'local-dir:some/export'], "local-dir:some/export: bench times registered model names with random "
                                            "weights; give the architecture (config.json's 'architecture')"),
    (['--models', 'resnet18_isqrt', '--model-kwargs', 'in_chans=1'],
     'resnet18_isqrt cannot take 3x64x64 inputs (--img-size 64): '),
])
def test_bad_options_are_named_before_any_work(argv, expected, capsys, monkeypatch):
    monkeypatch.setattr(bench_models, 'ModelBench', None)  # building one would fail with a TypeError
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert cli.main(['bench', *argv, *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith('timm-gcp bench: error: ') and expected in err and err.count('\n') == 1


def test_an_img_size_a_model_cannot_take_is_named_before_any_work(capsys, monkeypatch):
    """Every model timed, the baselines too, runs at --img-size on the meta device first; a ViT is rebuilt for it."""
    monkeypatch.setattr(bench_models, 'ModelBench', None)
    assert cli.main(['bench', '--models', 'resnet18_isqrt', '--batch-size', '2', '--img-size', '16']) == 2
    err = capsys.readouterr().err
    assert err.startswith('timm-gcp bench: error: resnet18_isqrt cannot take 3x16x16 inputs (--img-size 16): GCP '
                          'pooling got a 1x1 feature map') and err.count('\n') == 1
    args = argparse.Namespace(models=['deit_tiny_patch16_224_isqrt'], model_kwargs={}, img_size=64)
    assert bench_models.bench_names(args) == {'deit_tiny_patch16_224': None,
                                              'deit_tiny_patch16_224_isqrt': 'deit_tiny_patch16_224'}


def test_run_on_meta_says_what_it_could_check():
    """docs/architecture.md, "Commands": the commands' one check of a model against an input size."""
    vit = build_on_meta('vit_tiny_patch16_224')
    assert run_on_meta(vit, (3, 224, 224))
    with pytest.raises(MetaInputError) as info:
        run_on_meta(vit, (3, 64, 64))
    assert info.value.fixed_size == (224, 224) and 'Input height (64)' in str(info.value)
    assert info.value.hint('vit', 'FIX') == ' (vit is built for 224x224 inputs only: FIX)'
    with pytest.raises(MetaBuildError, match='nosuch'):
        build_on_meta('test_resnet', nosuch=1)

    class Item(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x.max().item()

    assert not run_on_meta(Item(), (3, 8, 8))  # a .item() cannot run on the meta device: unchecked, not refused


def test_unknown_model_is_named(capsys):
    assert cli.main(['bench', '--models', 'resnet18', 'resnet18_nosuchmethod', *TINY]) == 2
    err = capsys.readouterr().err
    assert "'resnet18_nosuchmethod'" in err and 'unknown model' in err


@pytest.mark.parametrize('name,dim,iters', [('resnet18_isqrt', 128, 5), ('resnet18_isqrt_d256', 256, 3)])
def test_head_flops_match_a_hand_count(name, dim, iters):
    model = timm.create_model(name, gcp_iters=iters).eval()
    b, c, side, classes = 2, 512, 4, 1000
    feats = torch.randn(b, c, side, side)
    n = side * side
    macs = (
        c * dim * n  # 1x1 reduction conv
        + dim * dim * n  # covariance X X^T
        + (3 * iters - 3) * dim ** 3  # Newton-Schulz: 3 products per middle step, 1 first, 2 last
        + dim * (dim + 1) // 2 * classes  # fc on the upper triangle
    )
    assert count_flops(model.forward_head, feats) == 2 * b * macs


def test_model_flops_are_backbone_plus_head():
    model = timm.create_model('resnet18_dropcov').eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
    assert count_flops(model, x) == count_flops(model.forward_features, x) + count_flops(model.forward_head, feats)


def test_head_error_measures_the_precision_of_the_run():
    torch.manual_seed(0)
    model = timm.create_model('resnet18_isqrt', num_classes=10)
    features = torch.randn(4, model.num_features, 7, 7).relu()
    exact = head_error(model, features, contextlib.nullcontext)
    bf16 = head_error(model, features, lambda: torch.autocast('cpu', dtype=torch.bfloat16))
    assert exact < 1e-5  # float32 against float64
    assert 1e-3 < bf16 < 0.1  # the reduction conv and the classifier run in bfloat16
    assert not model.training


def test_saved_tensor_bytes_counts_each_storage_once():
    w = torch.randn(8, 8, requires_grad=True)
    x = torch.randn(4, 8)
    # x @ w saves x and w; relu saves its output (4 x 8); w is excluded
    assert saved_tensor_bytes(lambda: (x @ w).relu(), exclude=[w]) == 2 * 4 * 8 * 4


class _HeadWithHostSync(nn.Module):
    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return x * x.mean().item()


def test_head_graph_breaks_counts_a_break():
    assert head_graph_breaks(_HeadWithHostSync(), torch.randn(2, 3)) == 1
    model = timm.create_model('resnet18_isqrt', gcp_dim=16)
    assert head_graph_breaks(model, torch.randn(2, model.num_features, 4, 4)) == 0


def test_a_device_index_beyond_the_devices_is_named(capsys, monkeypatch):
    monkeypatch.setattr(bench_models, 'ModelBench', None)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    assert cli.main(['bench', '--models', 'resnet18', '--device', 'cuda:1', *TINY]) == 2
    assert capsys.readouterr().err == ("timm-gcp bench: error: --device is 'cuda:1', but there are 1 CUDA device(s) "
                                       "here, numbered from 0\n")


# --- a probe step against a full training step (--probe; docs/probing.md, "Cost") ---------------------------

def _bench(name: str, **options) -> bench_models.ModelBench:
    args = argparse.Namespace(amp_dtype='float32', channels_last=False, img_size=64, batch_size=2, compile=None,
                              probe=True, **options)
    return bench_models.ModelBench(name, args, torch.device('cpu'))


def test_probe_step_trains_the_head_alone_and_its_memory_is_the_heads():
    """The probe copy trains its GCP head and nothing else; its CPU memory is the whole model's weights, the head's
    momentum and what the head saves for backward, counted here on features computed without autograd."""
    bench = _bench('resnet18_isqrt')
    bench.prepare(None, warmup=1)
    head = {f'head.{k}' for k, _ in bench.probe_model.head.named_parameters()}
    before = {k: v.clone() for k, v in bench.probe_model.state_dict().items()}
    bench.probe()
    changed = {k for k, v in bench.probe_model.state_dict().items() if not torch.equal(v, before[k])}
    assert head <= changed and all(k.startswith('head.') for k in changed)
    # 512 -> 128 reduction (conv without bias, BN), 128 * 129 / 2 features -> 1000 classes
    assert bench.result(None).probe_params == 512 * 128 + 2 * 128 + 128 * 129 // 2 * 1000 + 1000

    model = bench.probe_model
    params = list(model.parameters())
    with torch.no_grad():
        features = model.eval().forward_features(bench.x)
    model.train()
    saved = saved_tensor_bytes(lambda: F.cross_entropy(model.forward_head(features), bench.target), exclude=params)
    weights = sum(t.numel() * t.element_size() for t in (*params, *model.buffers()))
    momentum = sum(p.numel() * p.element_size() for _, p in model.head.named_parameters())
    assert bench.probe_memory == weights + momentum + saved
    assert bench.probe_memory < bench.train_memory


def test_probe_table_reports_both_steps(tmp_path):
    path = tmp_path / 'bench.json'
    text = _run_cli(['bench', '--models', 'resnet18', '--batch-size', '2', '--img-size', '32', '--rounds', '1',
                     '--probe', '--json', str(path)])
    row = json.loads(path.read_text())['models'][0]
    assert row['probe_params'] == 512 * 1000 + 1000  # timm's linear probe: the classifier alone
    assert row['probe_time_share'] == pytest.approx(row['times']['probe'] / row['times']['train'])
    assert row['probe_memory_share'] == pytest.approx(row['probe_memory'] / row['train_memory'])
    table = _tables(text)[2]
    assert list(table[0]) == ['model', 'trained params, probe', 'train step (ms)', 'probe step (ms)',
                              'probe / train time', 'train mem (MiB)', 'probe mem (MiB)', 'probe / train mem']
    assert table[0]['trained params, probe'] == '513,000'
    assert table[0]['probe mem (MiB)'] == f"{row['probe_memory_mib']:.0f}"
    assert 'probe step = the same with the trunk frozen' in text
