"""A user's own weights: a timm train.py checkpoint converted, published to their repo with an honest card.

The checkpoints are written by timm's own `CheckpointSaver` (what train.py uses), beside the run's
`args.yaml` and `summary.csv` in train.py's formats.
"""
import argparse
import json
import shutil

import pytest
import timm
import torch
import yaml
from timm.utils import CheckpointSaver, ModelEmaV3

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp import cli
from timm_gcp.convert.converter import ConversionError, convert_checkpoint
from timm_gcp.export.folder import AUTHORS_FIELDS
from timm_gcp.hub.publish import publish
from timm_gcp.models.sources import PAPERS

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
    root.mkdir()
    model = randomize(timm.create_model('resnet18_isqrt', num_classes=10, gcp_dim=16), tensors='all', seed=1)
    ema = ModelEmaV3(model)
    with torch.no_grad():
        for p in ema.module.parameters():
            p.mul_(0.9)  # the EMA differs from the model
    args = argparse.Namespace(model='resnet18_isqrt', num_classes=10, model_kwargs={'gcp_dim': 16},
                              data_dir='/data/mydata', dataset='', epochs=3, batch_size=64, lr=0.05, opt='sgd',
                              model_ema=True)
    (root / 'args.yaml').write_text(yaml.safe_dump(vars(args)))
    (root / 'summary.csv').write_text(SUMMARY)
    saver = CheckpointSaver(model, torch.optim.SGD(model.parameters(), lr=0.05), args=args, model_ema=ema,
                            checkpoint_dir=str(root), recovery_dir=str(root), decreasing=False, max_history=1)
    saver.save_checkpoint(1, metric=42.25)
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
