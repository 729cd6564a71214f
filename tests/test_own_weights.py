"""A user's own weights: a timm train.py checkpoint converted, published to their repo with an honest card.

The checkpoints are written by timm's own `CheckpointSaver` (what train.py uses), beside the run's
`args.yaml` and `summary.csv` in train.py's formats.
"""
import json
import shutil

import pytest
import timm
import torch
from timm.utils import ModelEmaV3

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp import cli
from timm_gcp.convert.converter import ConversionError, convert_checkpoint
from timm_gcp.export.folder import AUTHORS_FIELDS, export_model_args
from timm_gcp.hub.cards import measure_model
from timm_gcp.hub.publish import PublishError, publish
from timm_gcp.measure import count_flops
from timm_gcp.hub.run_card import read_run, render_run_card
from timm_gcp.models.sources import PAPERS

from tests.helpers.train_runs import FASHION_CLASSES, fashion_folder, write_train_run
from tests.helpers.weights import randomize

REPO_ID = 'someone/resnet18_isqrt.mydata'
SUMMARY = ('epoch,train_loss,eval_loss,eval_top1,eval_top5,lr\n'
           '0,2.10,2.00,31.50,80.00,0.1\n'
           '1,1.80,1.70,42.25,88.50,0.05\n'
           '2,1.60,1.65,41.00,89.00,0.01\n')


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    """A finished train.py run of resnet18_isqrt (10 classes, gcp_dim=16) with a model EMA."""
    root = tmp_path_factory.mktemp('train') / '20261130-resnet18_isqrt-224'
    model = randomize(timm.create_model('resnet18_isqrt', num_classes=10, gcp_dim=16), tensors='all', seed=1)
    ema = ModelEmaV3(model)
    with torch.no_grad():
        for p in ema.module.parameters():
            p.mul_(0.9)  # the EMA differs from the model
    write_train_run(root, model, ema=ema, model='resnet18_isqrt', num_classes=10, model_kwargs={'gcp_dim': 16},
                    data_dir='/data/mydata', epochs=3, batch_size=64, lr=0.05, opt='sgd', model_ema=True, metric=42.25)
    (root / 'summary.csv').write_text(SUMMARY)
    return root, model.eval(), ema.module.eval()


@pytest.mark.parametrize('use_ema', [False, True])
def test_train_checkpoint_converts_publishes_and_loads_back(tmp_path, fake_hub, run_dir, use_ema):
    root, model, ema = run_dir
    source = ema if use_ema else model
    converted = tmp_path / 'converted'
    args = ['convert', str(root / 'model_best.pth.tar'), '--out', str(converted)] + (['--use-ema'] if use_ema else [])
    assert cli.main(args) == 0  # no --model: the checkpoint names it; num_classes and gcp_dim come with it
    config = json.loads((converted / 'config.json').read_text())
    assert config['architecture'] == 'resnet18_isqrt'
    assert config['num_classes'] == 10 and config['model_args']['gcp_dim'] == 16
    assert not set(AUTHORS_FIELDS) & set(config['pretrained_cfg'])  # no paper, origin or license of the authors
    provenance = json.loads((converted / 'provenance.json').read_text())
    assert provenance['authors_release'] is None
    assert provenance['source']['file'] == 'model_best.pth.tar' and len(provenance['source']['sha256']) == 64
    assert provenance['source']['weights'] == ("'state_dict_ema' (EMA weights)" if use_ema else "'state_dict'")
    assert provenance['training_run']['epoch'] == 1 and provenance['training_run']['metric'] == 42.25
    assert (converted / 'args.yaml').read_text() == (root / 'args.yaml').read_text()

    staged = tmp_path / 'staged'
    assert cli.main(['publish', str(converted), '--repo-id', REPO_ID, '--dry-run', '--out', str(staged)]) == 0
    assert fake_hub.calls == []
    card = (staged / 'README.md').read_text()
    assert '# Model card for resnet18_isqrt.mydata' in card
    assert "Trained with timm's `train.py` on `mydata` by the uploader, not by the method's authors" in card
    assert 'top-1 42.25 %, top-5 88.50 % at epoch 1, after 3 epochs' in card
    assert '| batch_size | `64` |' in card and '| model_ema | `True` |' in card
    assert 'paper authors' not in card and 'imagenet-1k' not in card.lower()
    assert PAPERS['isqrt']['bibtex'] in card and "create_model('hf-hub:someone/resnet18_isqrt.mydata'" in card

    loaded = timm.create_model(f'local-dir:{staged}', pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)

    assert cli.main(['publish', str(converted), '--repo-id', REPO_ID]) == 0  # the upload, to the fake Hub
    assert sorted(fake_hub.uploads[REPO_ID]) == sorted(p.name for p in staged.iterdir())


def test_train_dir_gives_the_run_of_a_moved_checkpoint(tmp_path, fake_hub, run_dir):
    root, _, _ = run_dir
    moved = tmp_path / 'model_best.pth.tar'
    shutil.copyfile(root / 'model_best.pth.tar', moved)
    converted = tmp_path / 'converted'
    convert_checkpoint(moved, out_dir=converted)
    assert not (converted / 'args.yaml').exists()
    bare = publish(converted, REPO_ID, dry_run=True, out=tmp_path / 'bare')
    card = (bare.folder / 'README.md').read_text()
    assert 'timm-gcp has no record of how or by whom these weights were trained' in card and '## Training' not in card
    with_run = publish(converted, REPO_ID, train_dir=root, dry_run=True, out=tmp_path / 'with_run')
    card = (with_run.folder / 'README.md').read_text()
    assert 'top-1 42.25 %' in card and (with_run.folder / 'summary.csv').read_text() == SUMMARY


def test_a_training_run_is_not_the_authors_file(run_dir, tmp_path):
    root, _, _ = run_dir
    with pytest.raises(ConversionError, match=r"a training run \(args\.yaml, summary\.csv beside it\), not the "
                                              r"authors' file of resnet50_isqrt\.gcp_in1k: convert it with --model "
                                              r"resnet50_isqrt"):
        convert_checkpoint(root / 'model_best.pth.tar', 'resnet50_isqrt.gcp_in1k', tmp_path / 'x')
    with pytest.raises(ConversionError, match=r"--use-ema, but the checkpoint has no EMA weights"):
        path = tmp_path / 'plain.pth'
        torch.save({'state_dict': timm.create_model('resnet18_isqrt', gcp_dim=8).state_dict()}, path)
        convert_checkpoint(path, 'resnet18_isqrt', model_kwargs=dict(gcp_dim=8), use_ema=True)
    assert not (tmp_path / 'x').exists()


# --- a run at 64 px on a three-class ImageFolder: what the export and its load lines keep of it -------------------

TINY_RESNET = dict(layers=(1, 1, 1, 1), channels=(8, 8, 16, 32), gcp_dim=8)
# train.py's settings of the run (docs/checkpoints.md, "timm train.py checkpoints")
PREPROCESSING = dict(img_size=64, crop_pct=0.95, interpolation='bilinear', mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
RUNS = {
    'resnet': ('resnet18_isqrt', TINY_RESNET),
    'gcp_isqrt': ('gcp_isqrt', dict(backbone='test_resnet', gcp_dim=8)),
}


@pytest.fixture(scope='module', params=sorted(RUNS))
def small_run(request, tmp_path_factory):
    """A train.py run at 64 px with 3 classes of an ImageFolder; (checkpoint, trained model, its arch)."""
    arch, kwargs = RUNS[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    model = randomize(timm.create_model(arch, num_classes=3, **kwargs), tensors='all', seed=3).eval()
    checkpoint = write_train_run(tmp / 'run', model, model=arch, num_classes=3, model_kwargs=kwargs,
                                 data_dir=str(fashion_folder(tmp / 'fashion')), **PREPROCESSING)
    return checkpoint, model, arch


def _load_lines(printed: str) -> list:
    """The `timm.create_model(...)` calls convert prints under 'load with'."""
    start = printed.index('load with   ')
    return [line.strip() for line in printed[start + len('load with'):].splitlines() if line.strip()]


def test_every_printed_load_line_loads_the_trained_model_and_its_preprocessing(small_run, tmp_path, capsys):
    checkpoint, trained, _ = small_run
    out = tmp_path / 'export'
    assert cli.main(['convert', str(checkpoint), '--out', str(out)]) == 0
    lines = _load_lines(capsys.readouterr().out)
    assert lines and all(line.startswith('timm.create_model(') for line in lines)
    x = torch.randn(2, 3, 64, 64)
    for line in lines:
        loaded = eval(line, {'timm': timm}).eval()  # noqa: S307  (the line convert printed, as a user runs it)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), trained(x), rtol=0, atol=0)
        data = timm.data.resolve_data_config(model=loaded)
        assert data['input_size'] == (3, 64, 64) and data['crop_pct'] == 0.95
        assert data['interpolation'] == 'bilinear' and tuple(data['mean']) == (0.5,) * 3
        assert tuple(data['std']) == (0.25,) * 3
        assert tuple(loaded.pretrained_cfg['label_names']) == FASHION_CLASSES


def test_export_config_and_run_card_carry_the_runs_size_and_classes(small_run, tmp_path):
    import transformers  # slow to import: only here

    checkpoint, _, _ = small_run
    out = tmp_path / 'export'
    report = convert_checkpoint(checkpoint, out_dir=out)
    config = json.loads((out / 'config.json').read_text())
    cfg = config['pretrained_cfg']
    assert cfg['input_size'] == [3, 64, 64] and cfg['crop_pct'] == 0.95 and cfg['interpolation'] == 'bilinear'
    assert cfg['mean'] == [0.5] * 3 and cfg['std'] == [0.25] * 3
    assert config['label_names'] == list(FASHION_CLASSES)
    assert 'img_size=64' in report.format() and '3 class names of its data folder' in report.format()
    # transformers' pipeline names the classes (id2label) instead of LABEL_0..2, and preprocesses as the run did
    assert transformers.AutoConfig.from_pretrained(str(out)).id2label == dict(enumerate(FASHION_CLASSES))
    processor = transformers.AutoImageProcessor.from_pretrained(str(out))
    assert processor.data_config['input_size'] == (3, 64, 64) and processor.data_config['crop_pct'] == 0.95
    arch = config['architecture']
    stats = measure_model(timm.create_model(f'local-dir:{out}', device='meta'), arch)
    card = render_run_card('someone/run', arch, export_model_args(config), stats, run=read_run(
        (out / 'args.yaml').read_text()))
    assert '  - Image size: 64 x 64\n' in card and '| img_size | `64` |' in card
    assert '| crop_pct | `0.95` |' in card and '| interpolation | `bilinear` |' in card


def test_publish_card_measures_the_export_at_the_runs_size(small_run, tmp_path):
    """The card's image size and GMACs are the export's (64 px), not the registered model's 224 px."""
    checkpoint, trained, arch = small_run
    convert_checkpoint(checkpoint, out_dir=tmp_path / 'export')
    result = publish(tmp_path / 'export', 'someone/run', dry_run=True, out=tmp_path / 'staged')
    card = (result.folder / 'README.md').read_text()
    gmacs = count_flops(trained, torch.randn(1, 3, 64, 64)) / 2e9
    assert f'  - GMACs: {gmacs:.2f}\n' in card and '  - Image size: 64 x 64\n' in card
    assert '| img_size | `64` |' in card and 'x 224' not in card


def test_publish_refuses_the_train_dir_of_another_model(small_run, tmp_path):
    """The card would give one run's training table to another model's weights."""
    checkpoint, _, arch = small_run
    convert_checkpoint(checkpoint, out_dir=tmp_path / 'export')
    other = tmp_path / 'other_run'
    other.mkdir()
    (other / 'args.yaml').write_text('model: resnet34_isqrt\nimg_size: 224\n')
    with pytest.raises(PublishError, match=rf"other_run/args.yaml: the run trained resnet34_isqrt, but .*export holds "
                                           rf"{arch}: give the --train-dir of the run these weights come from$"):
        publish(tmp_path / 'export', 'someone/run', train_dir=other, dry_run=True, out=tmp_path / 'staged')
    assert not (tmp_path / 'staged').exists()


def test_a_checkpoint_of_another_architecture_is_named_before_any_weights(small_run, tmp_path, monkeypatch):
    checkpoint, _, arch = small_run
    monkeypatch.setattr(timm, 'create_model', None)  # nothing may be built
    with pytest.raises(ConversionError, match=rf"model_best\.pth\.tar: the checkpoint was trained as {arch} \(its "
                                              rf"'arch'\); --model says resnet34_isqrt: give {arch}, or leave --model "
                                              r"out$"):
        convert_checkpoint(checkpoint, 'resnet34_isqrt', tmp_path / 'out')
    assert not list(tmp_path.iterdir())


def test_a_run_with_one_input_channel_converts_with_it(tmp_path):
    model = randomize(timm.create_model('resnet18_isqrt', num_classes=3, in_chans=1, **TINY_RESNET), tensors='all')
    checkpoint = write_train_run(tmp_path / 'run', model.eval(), model='resnet18_isqrt', num_classes=3, in_chans=1,
                                 model_kwargs=TINY_RESNET, img_size=32)
    out = tmp_path / 'export'
    convert_checkpoint(checkpoint, out_dir=out)
    loaded = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert timm.data.resolve_data_config(model=loaded)['input_size'] == (1, 32, 32)


def test_the_positional_data_folder_counts_as_data_dir(tmp_path):
    """train.py's deprecated positional `data` (args.yaml: data set, data_dir null) names the dataset too."""
    model = randomize(timm.create_model('resnet18_isqrt', num_classes=3, **TINY_RESNET), tensors='all').eval()
    folder = fashion_folder(tmp_path / 'fashion')
    checkpoint = write_train_run(tmp_path / 'run', model, model='resnet18_isqrt', num_classes=3,
                                 model_kwargs=TINY_RESNET, data=str(folder))
    out = tmp_path / 'export'
    report = convert_checkpoint(checkpoint, out_dir=out)
    assert report.label_names == FASHION_CLASSES
    assert json.loads((out / 'provenance.json').read_text())['training_run']['data'] == str(folder)
    assert read_run((out / 'args.yaml').read_text()).dataset == 'fashion'
