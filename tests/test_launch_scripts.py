"""The launcher's options through timm's real train.py and validate.py (TIMM_SCRIPTS_DIR; skipped without it).

A fine-grained recipe with the head at 5x LR, flip-averaged evaluation and the squash crop; a preset's
head trained on a frozen trunk with EMA and resume; and train.py under torchrun with two CPU processes
against one process on the same global batch. See docs/training.md, "The launcher's options".
"""
import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import timm
import torch
import yaml
from safetensors.torch import save_file
from torchvision import datasets, transforms

import timm_gcp  # noqa: F401  (registers the models)

from tests.helpers import REPO
from tests.helpers.images import write_image_folder
from tests.helpers.timm_sources import SCRIPTS_DIR, needs_scripts

pytestmark = [pytest.mark.slow, needs_scripts]

TRAIN = os.path.join(SCRIPTS_DIR, 'train.py')
VALIDATE = os.path.join(SCRIPTS_DIR, 'validate.py')
SMALL = ['--model', 'resnet18_isqrt', '--model-kwargs', 'gcp_dim=16', '--num-classes', '2', '--device', 'cpu',
         '--workers', '0', '--no-prefetcher']


@pytest.fixture(scope='module')
def images(tmp_path_factory) -> Path:
    """8 training and 8 validation images of two classes, 40 x 40."""
    return write_image_folder(tmp_path_factory.mktemp('images'), per_class=4, size=40)


def _env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS='1', **extra)
    env['PYTHONPATH'] = os.pathsep.join([str(REPO), env.get('PYTHONPATH', '')])
    return env


def _run(cmd: List[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=_env(), timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def _launch(script: str, *args: str) -> List[str]:
    return [sys.executable, '-m', 'timm_gcp.launch', script, *args]


def _summary(run: Path) -> List[Dict[str, float]]:
    with open(run / 'summary.csv') as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


def _flip_squash_eval(model: torch.nn.Module, root: Path, size: int, crop_pct: float):
    """Loss and top-1 of `model` on root/validation as fast-MPN-COV evaluates Cars: Resize((size / crop_pct) x 2),
    CenterCrop(size), the mean of the logits of the crop and its mirror image (torchvision, not timm)."""
    tf = transforms.Compose([
        transforms.Resize((int(size / crop_pct),) * 2, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(size), transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    data = datasets.ImageFolder(str(root / 'validation'), tf)
    x = torch.stack([data[i][0] for i in range(len(data))])
    y = torch.tensor(data.targets)
    model.eval()
    with torch.no_grad():
        logits = (model(x) + model(x.flip(-1))) / 2
    return torch.nn.functional.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item() * 100


def test_a_finegrained_recipe_runs_with_head_lr_flip_test_and_squash_crop(images, tmp_path):
    """The Cars recipe, shrunk from the command line (a small model from a local checkpoint, 64 px, one epoch)."""
    recipe = REPO / 'train_scripts' / 'finegrained' / 'resnet50_isqrt_d256_cars.yaml'
    torch.manual_seed(0)
    pretrained = tmp_path / 'pretrained.safetensors'
    save_file(timm.create_model('resnet18_isqrt', gcp_dim=16).state_dict(), str(pretrained))
    _run(_launch(TRAIN, '--config', str(recipe), '--data-dir', str(images), *SMALL, '--pretrained-path',
                 str(pretrained), '--img-size', '64', '--batch-size', '4', '--epochs', '1', '--output', str(tmp_path),
                 '--experiment', 'run'), tmp_path)
    run = tmp_path / 'run'
    with open(run / 'args.yaml') as f:
        args = yaml.safe_load(f)
    assert (args['head_lr_scale'], args['head_lr_scope'], args['flip_test']) == (5, 'classifier', True)
    assert (args['train_crop_mode'], args['crop_mode'], args['crop_pct']) == ('squash', 'squash', 0.875)

    checkpoint = _checkpoint(run / 'last.pth.tar')
    model = timm.create_model('resnet18_isqrt', gcp_dim=16, num_classes=2)
    model.load_state_dict(checkpoint['state_dict'])
    groups = checkpoint['optimizer']['param_groups']
    names = [n for n, _ in model.named_parameters()]
    scaled = [names[i] for g in groups if g.get('lr_scale') == 5 for i in g['params']]
    assert sorted(scaled) == ['head.fc.bias', 'head.fc.weight']
    base = 1.2e-3 * 4 / 10  # lr_base at lr_base_size 10, for the batch of 4
    assert {round(g['lr'] / base, 6) for g in groups} == {1.0, 5.0}

    loss, top1 = _flip_squash_eval(model, images, 64, 0.875)
    row = _summary(run)[-1]
    assert row['eval_loss'] == pytest.approx(loss, rel=1e-4) and row['eval_top1'] == pytest.approx(top1)

    out = _run(_launch(VALIDATE, '--data-dir', str(images), '--split', 'validation', *SMALL, '--img-size', '64',
                       '--crop-pct', '0.875', '--crop-mode', 'squash', '--interpolation', 'bilinear',
                       '--checkpoint', str(run / 'last.pth.tar'), '--flip-test', '--batch-size', '4'), tmp_path)
    assert f"Acc@1 {top1:.3f}" in out


def test_freeze_trunk_trains_a_presets_head_with_ema_and_resume(images, tmp_path):
    model_args = ['--model', 'mobilenetv3_large_100_isqrt', '--model-kwargs', 'gcp_dim=16', '--num-classes', '2']
    torch.manual_seed(0)
    init = timm.create_model('mobilenetv3_large_100_isqrt', gcp_dim=16, num_classes=2).state_dict()
    torch.save(init, tmp_path / 'init.pth')
    common = [*model_args, '--data-dir', str(images), '--device', 'cpu', '--workers', '0', '--no-prefetcher',
              '--img-size', '64', '--batch-size', '4', '--lr', '0.05', '--freeze-trunk', '--head-lr-scale', '5',
              '--model-ema', '--model-ema-decay', '0.5', '--output', str(tmp_path)]
    _run(_launch(TRAIN, *common, '--initial-checkpoint', str(tmp_path / 'init.pth'), '--epochs', '1',
                 '--experiment', 'first'), tmp_path)
    _run(_launch(TRAIN, *common, '--resume', str(tmp_path / 'first' / 'last.pth.tar'), '--epochs', '2',
                 '--experiment', 'resumed'), tmp_path)
    with open(tmp_path / 'resumed' / 'args.yaml') as f:
        assert yaml.safe_load(f)['freeze_trunk'] == 'head'
    checkpoint = _checkpoint(tmp_path / 'resumed' / 'last.pth.tar')
    assert checkpoint['epoch'] == 1  # the resumed run trained its second epoch
    for key in ('state_dict', 'state_dict_ema'):
        state = checkpoint[key]
        trunk = [k for k in init if not k.startswith('head.')]
        assert trunk and all(torch.equal(state[k], init[k]) for k in trunk), key  # weights and BN statistics
        assert not torch.equal(state['head.fc.weight'], init['head.fc.weight'])
        assert not torch.equal(state['head.global_pool.reduce.bn.running_mean'],
                               init['head.global_pool.reduce.bn.running_mean'])
    groups = checkpoint['optimizer']['param_groups']
    assert sorted(g.get('lr_scale', 1.0) for g in groups) == [1.0, 1.0, 5.0, 5.0]  # the classifier's split resumed
    assert sum(len(g['params']) for g in groups) == sum(1 for k in init if k.startswith('head.') and (
        k.endswith('weight') or k.endswith('bias')))


def test_torchrun_two_cpu_processes_equal_one_process(images, tmp_path):
    """--sync-bn, --freeze-trunk, --head-lr-scale and EMA under DDP (gloo): one global batch of 8 per epoch, split
    4 + 4 over two processes or whole in one, with a deterministic crop and no flip or jitter."""
    common = [*SMALL, '--data-dir', str(images), '--img-size', '32', '--epochs', '2', '--freeze-trunk',
              '--head-lr-scale', '5', '--flip-test', '--train-crop-mode', 'squash', '--crop-mode', 'squash',
              '--crop-pct', '0.875', '--hflip', '0', '--color-jitter', '0', '--lr', '0.05', '--warmup-epochs', '0',
              '--sched', 'step', '--decay-epochs', '1', '--decay-rate', '0.5', '--sync-bn', '--model-ema',
              '--model-ema-decay', '0.5', '--output', str(tmp_path)]
    log = _run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m',
                'timm_gcp.launch', TRAIN, *common, '--batch-size', '4', '--experiment', 'ddp'], tmp_path)
    assert 'Training in distributed mode with multiple processes' in log and 'Process 1, total 2' in log
    _run(_launch(TRAIN, *common, '--batch-size', '8', '--experiment', 'one'), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ['ddp', 'one']  # rank 0 writes the run

    ddp, one = _summary(tmp_path / 'ddp'), _summary(tmp_path / 'one')
    assert len(ddp) == len(one) == 2
    for a, b in zip(ddp, one):
        for key in ('train_loss', 'eval_loss', 'eval_top1', 'lr'):
            assert a[key] == pytest.approx(b[key], rel=1e-5), key
    checkpoints = [_checkpoint(tmp_path / run / 'last.pth.tar') for run in ('ddp', 'one')]
    for state in ('state_dict', 'state_dict_ema'):
        a, b = (c[state] for c in checkpoints)
        assert list(a) == list(b)
        for key in a:
            if key.startswith('head.'):
                assert torch.allclose(a[key].float(), b[key].float(), rtol=1e-5, atol=1e-6), (state, key)
            else:
                assert torch.equal(a[key], b[key]), (state, key)  # the frozen trunk, started from the same seed
