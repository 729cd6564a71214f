"""Deployment and interoperation for every model family: ONNX (onnxruntime against PyTorch),
torch.export, TorchScript, and transformers' TimmWrapper loading a Hub export. Small models and
inputs keep it fast; no network.
"""
import os
import stat
from types import SimpleNamespace

import numpy as np
import huggingface_hub
import onnxruntime as ort
import pytest
import timm
import torch
from PIL import Image

from timm_gcp import cli  # importing timm_gcp registers the architectures TimmWrapper asks timm for
from timm_gcp.export import OnnxExportError, export_onnx
from timm_gcp.export import onnx as onnx_export
from timm_gcp.export.folder import export_for_hub
from tests.helpers.commands import main_interrupted
from tests.helpers.train_runs import write_train_run
from tests.helpers.weights import randomize

# one model of every family, small: (registered name, settings, input size)
FAMILIES = {
    'resnet18_isqrt': ('resnet18_isqrt', dict(gcp_dim=16), 64),
    'resnet18_dropcov': ('resnet18_dropcov', dict(gcp_dim=16), 64),
    'deit_isqrt': ('deit_tiny_patch16_224_isqrt', dict(depth=1, gcp_dim=16, img_size=32), 32),
    'sot': ('vit_sot_tiny', dict(depth=1, img_size=32), 32),
    'dropcov_vit': ('vit_dropcov_small', dict(depth=1, img_size=32), 32),
}
MPN = ('resnet18_isqrt', dict(gcp_dim=16, gcp_norm='mpn'), 64)


def _build(name: str, kwargs: dict) -> torch.nn.Module:
    return randomize(timm.create_model(name, **kwargs), tensors='bn', seed=1).eval()


@pytest.fixture(scope='module')
def models():
    torch.manual_seed(0)
    built = {key: _build(name, kwargs) for key, (name, kwargs, _) in FAMILIES.items()}
    built['mpn'] = _build(*MPN[:2])
    return built


@pytest.fixture(scope='module')
def programs(models):
    """torch.export with a dynamic batch, traced at batch 2."""
    sizes = {**{k: v[2] for k, v in FAMILIES.items()}, 'mpn': MPN[2]}
    return {
        key: torch.export.export(model, (torch.randn(2, 3, sizes[key], sizes[key]),),
                                 dynamic_shapes=({0: torch.export.Dim('batch', min=1)},))
        for key, model in models.items()
    }


def _input(key: str, batch: int) -> torch.Tensor:
    size = MPN[2] if key == 'mpn' else FAMILIES[key][2]
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))


# --- torch.export and TorchScript ---------------------------------------------------------------------------

@pytest.mark.parametrize('key', [*FAMILIES, 'mpn'])
def test_torch_export_equals_eager(models, programs, key):
    x = _input(key, 3)  # another batch size than the trace's
    with torch.no_grad():
        torch.testing.assert_close(programs[key].module()(x), models[key](x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('key', list(FAMILIES))
def test_torchscript_equals_eager(models, key):
    x = _input(key, 2)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(models[key])(x), models[key](x), rtol=1e-6, atol=1e-6)


# --- ONNX ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('key', list(FAMILIES))
def test_onnx_matches_pytorch_with_dynamic_batch(models, programs, tmp_path, key):
    model = models[key]
    report = export_onnx(model, tmp_path / 'model.onnx', img_size=FAMILIES[key][2], dynamic_batch=True,
                         program=programs[key])
    assert report.input_size == (3, FAMILIES[key][2], FAMILIES[key][2])
    assert (report.export_batch, report.check_batch) == (2, 3) and report.max_rel_error <= 1e-4
    # matrix products, standard operators only, and no data-dependent control flow
    assert 'MatMul' in report.ops and not any('.' in op or op in ('Loop', 'If', 'Scan') for op in report.ops)
    session = ort.InferenceSession(str(report.path), providers=['CPUExecutionProvider'])
    x = _input(key, 4)
    with torch.no_grad():
        ref = model(x)
    out = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= 1e-4 * ref.abs().max()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model.onnx']


def test_an_opset_the_exporter_cannot_write_is_refused(models, programs, tmp_path):
    """The exporter keeps its own opset where it cannot convert to the one asked for: no file, the opset named."""
    with pytest.raises(OnnxExportError, match=r'^the ONNX exporter cannot write opset 5 \(it converts from opset '
                                              r'\d+ and failed\): pass --opset \d+ or leave --opset out$'):
        export_onnx(models['resnet18_isqrt'], tmp_path / 'model.onnx', img_size=64, dynamic_batch=True, opset=5,
                    program=programs['resnet18_isqrt'])
    assert list(tmp_path.iterdir()) == []


def test_a_negative_rtol_is_named_before_any_work(tmp_path, capsys):
    """A negative --rtol would fail every export after the work, blaming the logits."""
    assert cli.main(['export-onnx', 'resnet18_isqrt', '--rtol', '-1',
                     '--out', str(tmp_path / 'x.onnx')]) == 2
    assert capsys.readouterr().err == 'timm-gcp export-onnx: error: --rtol must be positive, got -1.0\n'
    assert list(tmp_path.iterdir()) == []


def test_onnx_refuses_eigendecomposition_before_writing(models, programs, tmp_path):
    with pytest.raises(OnnxExportError, match=r'eigendecomposition \(aten.linalg_eigh.default\).*no operator'):
        export_onnx(models['mpn'], tmp_path / 'mpn.onnx', img_size=MPN[2], dynamic_batch=True, program=programs['mpn'])
    assert not list(tmp_path.iterdir())


def test_cli_writes_no_file_on_failure(tmp_path, monkeypatch, capsys):
    class Unloadable:  # what the exporter hands back, but onnxruntime cannot read what it saves
        model = SimpleNamespace(opset_imports={'': 18})

        def save(self, path, **kwargs):
            open(path, 'wb').write(b'not onnx')

    monkeypatch.setattr(torch.onnx, 'export', lambda *args, **kwargs: Unloadable())
    args = ['export-onnx', 'resnet18_isqrt', '--out', str(tmp_path / 'r18.onnx'), '--img-size', '32',
            '--model-kwargs', 'gcp_dim=8']
    assert cli.main(args) == 1
    assert 'onnxruntime cannot run' in capsys.readouterr().err and not list(tmp_path.iterdir())
    assert cli.main(args + ['gcp_norm=mpn']) == 1
    assert 'eigendecomposition' in capsys.readouterr().err and not list(tmp_path.iterdir())


# --- transformers ---------------------------------------------------------------------------------------------

def test_transformers_loads_export_and_pipeline_gives_timm_logits(tmp_path, monkeypatch):
    import transformers  # slow to import: only here

    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    source = randomize(timm.create_model('resnet18_isqrt', gcp_dim=16, num_classes=7), tensors='bn', seed=2).eval()
    folder = export_for_hub(source, tmp_path / 'export')

    loaded = timm.create_model(f'local-dir:{folder}', pretrained=True).eval()
    assert loaded.num_classes == 7
    # the pipeline loads the folder with AutoModelForImageClassification and its TimmWrapperImageProcessor
    classify = transformers.pipeline('image-classification', model=str(folder))
    wrapped = classify.model
    assert type(wrapped) is transformers.TimmWrapperForImageClassification and wrapped.config.num_labels == 7
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(pixel_values=x).logits, source(x), rtol=0, atol=0)
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8))
    scores = classify(image, top_k=7, function_to_apply='none')
    logits = torch.tensor([s['score'] for s in sorted(scores, key=lambda s: int(s['label'].split('_')[1]))])
    transform = timm.data.create_transform(**timm.data.resolve_data_config(model=loaded))
    with torch.no_grad():
        expected = loaded(transform(image).unsqueeze(0))[0]
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('argv, expected', [
    (['resnet18_isqrt', '--checkpoint', 'no/such.pth'], "--checkpoint 'no/such.pth': no such file"),
    (['resnet18_isqrt', '--img-size', '0'], '--img-size must be at least 1, got 0'),
    (['resnet18_isqrt.nosuchtag'], 'Invalid pretrained tag (nosuchtag)'),
    (['local-dir:no/such/folder'], 'local-dir:no/such/folder: Config file not found'),
    (['resnet18_isqrt', '--model-kwargs', 'foo=1'], "unexpected keyword argument 'foo'"),
])
def test_cli_names_a_usage_mistake_before_any_export(argv, expected, tmp_path, capsys):
    assert cli.main(['export-onnx', *argv, '--out', str(tmp_path / 'x.onnx')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('timm-gcp export-onnx: error: ') and expected in err and err.count('\n') == 1
    assert not list(tmp_path.iterdir())


# --- a train.py checkpoint, permissions and Ctrl-C ----------------------------------------------------------------

TINY_RESNET = dict(layers=(1, 1, 1, 1), channels=(8, 8, 16, 32), gcp_dim=8)


@pytest.fixture
def run_checkpoint(tmp_path):
    """A train.py checkpoint of a 3-class resnet18_isqrt trained at 48 px, and the model."""
    model = _build('resnet18_isqrt', dict(num_classes=3, **TINY_RESNET))
    return write_train_run(tmp_path / 'run', model, model='resnet18_isqrt', num_classes=3, model_kwargs=TINY_RESNET,
                           img_size=48), model


@pytest.mark.parametrize('named', [True, False])
def test_cli_reads_a_train_checkpoint_as_convert_does(run_checkpoint, tmp_path, capsys, named):
    """num_classes, the settings and the input size come from the run; the architecture from its 'arch'."""
    checkpoint, model = run_checkpoint
    out = tmp_path / 'r18.onnx'
    assert cli.main(['export-onnx', *(['resnet18_isqrt'] if named else []), '--checkpoint', str(checkpoint),
                     '--out', str(out)]) == 0
    assert 'input 3x48x48' in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    x = torch.randn(1, 3, 48, 48)
    logits = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x), rtol=1e-4, atol=1e-5)


def test_cli_names_the_checkpoints_architecture(run_checkpoint, tmp_path, capsys):
    checkpoint, _ = run_checkpoint
    out = tmp_path / 'x.onnx'
    assert cli.main(['export-onnx', 'resnet34_isqrt', '--checkpoint', str(checkpoint), '--out', str(out)]) == 1
    assert capsys.readouterr().err == (
        f"timm-gcp export-onnx: error: {checkpoint}: the checkpoint was trained as resnet18_isqrt (its 'arch'); "
        'the model argument says resnet34_isqrt: give resnet18_isqrt, or leave the model argument out\n')
    assert cli.main(['export-onnx', '--out', str(out)]) == 2
    assert 'give the model argument (or a train.py --checkpoint' in capsys.readouterr().err
    assert not out.exists()


def test_a_fixed_size_backbone_names_its_img_size_argument(tmp_path):
    model = timm.create_model('gcp_isqrt', backbone='swin_tiny_patch4_window7_224', embed_dim=16, depths=(1, 1),
                              num_heads=(1, 1), img_size=64, gcp_dim=8)
    with pytest.raises(OnnxExportError, match=r'takes 64x64 inputs only: build it for 96x96 with the model argument '
                                              r'img_size=96 \(--model-kwargs img_size=96\)$'):
        export_onnx(model, tmp_path / 'x.onnx', img_size=96)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o077, 0o600)])
def test_the_onnx_file_has_the_mode_of_the_umask(models, programs, tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        export_onnx(models['resnet18_isqrt'], tmp_path / 'r18.onnx', img_size=64, dynamic_batch=True,
                    program=programs['resnet18_isqrt'])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / 'r18.onnx').stat().st_mode) == mode


def test_ctrl_c_prints_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, '_run_onnxruntime', interrupt)  # after the file is written, before its rename
    args = ['export-onnx', 'resnet18_isqrt', '--out', str(tmp_path / 'r18.onnx'), '--img-size', '32',
            '--model-kwargs', *(f'{k}={v}' for k, v in TINY_RESNET.items())]
    assert main_interrupted(args) == 130
    assert capsys.readouterr().err == 'timm-gcp export-onnx: interrupted\n'
    assert not list(tmp_path.iterdir())
