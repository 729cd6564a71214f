"""`timm-gcp release`: the authors' files of a folder converted, measured, refused or staged / uploaded, re-run safely.

The authors' files are MindSpore checkpoints in the TPAMI'23 layout (tests/helpers/layouts.py) of
two real release architectures; their classifier bias makes every image class 0 (the isqrt file)
or class 1 (the dropcov file), so on a validation folder whose one class is ImageNet's class 0
the first measures 100 % and the second 0 %, below its published top-1.
"""
from pathlib import Path

import pytest
import timm
import torch
from timm.data import ImageNetInfo

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp import cli
from timm_gcp.hub import release as release_module
from timm_gcp.hub.evaluate import evaluate, imagenet_class_map
from timm_gcp.hub.release import UPLOADED, find_release_files, release
from timm_gcp.models.releases import RELEASES

from tests.helpers.images import write_images
from tests.helpers.layouts import mindspore_layout, write_mindspore_checkpoint
from tests.helpers.weights import randomize

GOOD, BAD = 'ms_resnet18_isqrt.tpami_in1k', 'ms_resnet18_dropcov.tpami_in1k'


@pytest.fixture(scope='module')
def authors_files(tmp_path_factory):
    root = tmp_path_factory.mktemp('release')
    src = root / 'downloads'
    src.mkdir()
    for name, predicted in ((GOOD, 0), (BAD, 1)):
        model = randomize(timm.create_model(name.split('.')[0]))
        with torch.no_grad():
            model.head.fc.bias.zero_()
            model.head.fc.bias[predicted] = 1e4
        write_mindspore_checkpoint(src / f'{name}.ckpt', mindspore_layout(model.state_dict(), basic_block=True))
    (src / 'notes.txt').write_text('not a checkpoint')
    val = write_images(root / 'val' / 'n01440764', count=3, size=32).parent  # ImageNet's class 0
    for synset in ImageNetInfo('imagenet-1k').label_names()[1:]:  # the other classes' folders, empty
        (val / synset).mkdir()
    return src, val


def _hidden(folder: Path) -> list:
    return [p.name for p in folder.iterdir() if p.name.startswith('.')]


def test_release_dry_run_measures_refuses_and_reruns(tmp_path, capsys, fake_hub, authors_files):
    src, val = authors_files
    assert find_release_files(src) == {GOOD: src / f'{GOOD}.ckpt', BAD: src / f'{BAD}.ckpt'}
    out = tmp_path / 'staged'
    args = ['release', str(src), '--org', 'someone', '--data-dir', str(val), '--dry-run', '--out', str(out),
            '--workers', '0']
    assert cli.main(args) == 1  # a refused tag fails the run
    table = capsys.readouterr().out
    assert f'| {GOOD} | {GOOD}.ckpt | 74.64 | 100.00 | 100.00 | staged |' in table
    assert f'| {BAD} | {BAD}.ckpt | 73.80 | 0.00 | 0.00 | refused | 73.80 points below' in table
    assert sorted(p.name for p in out.iterdir()) == [GOOD] and fake_hub.calls == []
    card = (out / GOOD / 'README.md').read_text()
    assert 'top-1 74.64 %' in card and 'Measured on this conversion by `timm-gcp release`: top-1 100.00 %' in card
    assert "timm.create_model('hf-hub:someone/ms_resnet18_isqrt.tpami_in1k', pretrained=True)" in card

    assert cli.main(args) == 1  # the staged tag is skipped, the refused one tried again
    table = capsys.readouterr().out
    assert f'| {GOOD} | {GOOD}.ckpt | 74.64 | - | - | skipped |' in table and '| refused |' in table

    assert cli.main(args + ['--force']) == 0
    assert sorted(p.name for p in out.iterdir()) == [BAD, GOOD] and not _hidden(out)


def test_release_uploads_and_records(tmp_path, fake_hub, authors_files):
    src, _ = authors_files
    out = tmp_path / 'out'
    rows = release(src, 'someone', out=out, workers=0)  # no --data-dir: nothing measured, nothing refused
    assert [(r.name, r.status, r.measured) for r in rows] == [(GOOD, 'uploaded', None), (BAD, 'uploaded', None)]
    assert set(fake_hub.uploads) == {f'someone/{GOOD}', f'someone/{BAD}'}
    card = fake_hub.uploads[f'someone/{GOOD}']['README.md'].decode()
    assert "These are the authors' numbers for the original weights, not a re-evaluation" in card
    assert (out / UPLOADED).is_file()
    fake_hub.calls.clear()
    assert [r.status for r in release(src, 'someone', out=out, workers=0)] == ['skipped', 'skipped']
    assert fake_hub.calls == []
    # another org is another release
    assert [r.status for r in release(src, 'other', out=out, workers=0)] == ['uploaded', 'uploaded']


def test_interrupted_release_leaves_no_partial_folder(tmp_path, fake_hub, authors_files, monkeypatch):
    src, val = authors_files

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(release_module, 'evaluate', interrupt)
    out = tmp_path / 'out'
    with pytest.raises(KeyboardInterrupt):
        release(src, 'someone', data_dir=val, dry_run=True, out=out, workers=0)
    assert list(out.iterdir()) == []


def test_release_of_a_folder_without_authors_files(tmp_path, capsys):
    (tmp_path / 'model.pth').write_bytes(b'x')
    assert cli.main(['release', str(tmp_path), '--org', 'someone', '--dry-run']) == 2
    err = capsys.readouterr().err
    assert "holds no authors' file of any release tag" in err
    assert next(iter(RELEASES.values())).file in err  # an example of the names it looks for


def _no_conversion(*args, **kwargs):
    raise AssertionError('converted before the arguments were checked')


def test_release_refuses_a_data_dir_that_is_not_imagenet_val(tmp_path, capsys, authors_files, monkeypatch):
    """A 3-class folder would measure 0 % and blame the weights: refused, naming the folders, before any conversion."""
    monkeypatch.setattr(release_module, 'convert_checkpoint', _no_conversion)
    src, _ = authors_files
    three = tmp_path / 'fashion'
    for name in ('coat', 'shirt', 'trouser'):
        write_images(three / name, count=1)
    args = ['release', str(src), '--org', 'someone', '--dry-run', '--out', str(tmp_path / 'out'), '--workers', '0']
    assert cli.main([*args, '--data-dir', str(three)]) == 2
    assert capsys.readouterr().err == (
        f"timm-gcp release: error: --data-dir: {three}: not ImageNet's validation set: 3 class folder(s) where "
        f"ImageNet has 1000, one per synset (n01440764 ...); not ImageNet synsets: coat, shirt, trouser\n")
    subset = tmp_path / 'subset'  # synsets, but not all of them
    for synset in ImageNetInfo('imagenet-1k').label_names()[:10]:
        (subset / synset).mkdir(parents=True)
    assert cli.main([*args, '--data-dir', str(subset)]) == 2
    assert '10 class folder(s) where ImageNet has 1000' in capsys.readouterr().err
    with pytest.raises(ValueError, match="not ImageNet's validation set: 3 class folder"):
        release(src, 'someone', data_dir=three, dry_run=True, out=tmp_path / 'out')
    assert not (tmp_path / 'out').exists()


def test_release_refuses_an_org_that_makes_no_repo_id(tmp_path, capsys, authors_files, monkeypatch):
    monkeypatch.setattr(release_module, 'convert_checkpoint', _no_conversion)
    src, _ = authors_files
    assert cli.main(['release', str(src), '--org', 'some one', '--dry-run', '--out', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"timm-gcp release: error: --org: 'some one/{GOOD}': not a valid Hub repo id: ")
    assert "alphanumeric chars, '-', '_' or '.'" in err and not (tmp_path / 'out').exists()


@pytest.mark.parametrize('option', [['--batch-size', '0'], ['--workers', '-1'], ['--tolerance', '-0.5']])
def test_release_refuses_bad_numbers_before_any_conversion(option, tmp_path, capsys, authors_files, monkeypatch):
    monkeypatch.setattr(release_module, 'convert_checkpoint', _no_conversion)
    src, val = authors_files
    assert cli.main(['release', str(src), '--org', 'someone', '--data-dir', str(val), '--dry-run', *option]) == 2
    assert capsys.readouterr().err.startswith(
        'timm-gcp release: error: --batch-size must be at least 1, --workers and --tolerance at least 0; got ')


class _Always(torch.nn.Module):
    """Logits that pick ImageNet class `index` for every image."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.pretrained_cfg = dict(input_size=(3, 32, 32), crop_pct=1.0, interpolation='bilinear',
                                   mean=(0.5,) * 3, std=(0.5,) * 3)
        self.logits = torch.nn.Parameter(torch.zeros(1000).index_fill_(0, torch.tensor([index]), 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1)


def test_evaluate_labels_the_folders_by_synset_not_by_their_rank(tmp_path):
    """Images of ImageNet's class 1 alone in a val folder are class 1, not the first folder that holds images."""
    synsets = ImageNetInfo('imagenet-1k').label_names()
    for synset in synsets:
        (tmp_path / synset).mkdir()
    write_images(tmp_path / synsets[1], count=2, size=32)
    class_map = imagenet_class_map(tmp_path)
    assert evaluate(_Always(1), tmp_path, workers=0, class_map=class_map).top1 == 100.0
    assert evaluate(_Always(0), tmp_path, workers=0, class_map=class_map).top1 == 0.0
