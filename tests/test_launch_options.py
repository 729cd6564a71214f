"""The launcher's options for timm's train.py and validate.py (timm_gcp.training.scripts, .distributed, launch).

The pieces are driven here as train.py calls them, without train.py: its parser's argument group, the
names main() looks up (`create_model`, `create_optimizer_v2`, `create_loader`, the task classes,
`convert_sync_batchnorm`) replaced by `ScriptPatches`, and DDP with `--sync-bn` on the CPU (two gloo
processes against one process on the concatenated batch). The runs of the real scripts are in
tests/test_launch_scripts.py. See docs/training.md, "The launcher's options".
"""
import argparse
import os
from pathlib import Path
from typing import Dict

import pytest
import timm
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml
from PIL import Image
from timm.data import create_dataset, create_loader
from timm.layers import convert_sync_batchnorm
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.task import ClassificationTask
from torch import nn
from torchvision import transforms

from timm_gcp import launch
from timm_gcp.training.distributed import CpuSyncBatchNorm, ddp_device_ids, sync_batchnorm_on_cpu
from timm_gcp.training.finetune import scale_head_lr
from timm_gcp.training.scripts import ScriptPatches, add_script_arguments, options_in_use

from tests.helpers.images import write_image_folder

SMALL = dict(channels=(8, 16, 16, 16), num_classes=3, gcp_dim=8)


def _train_parser() -> argparse.ArgumentParser:
    """A parser with the train.py arguments the patches read, and the launcher's group."""
    parser = argparse.ArgumentParser()
    for flag, kind, default in (('--train-crop-mode', str, None), ('--img-size', int, None),
                                ('--crop-pct', float, None), ('--interpolation', str, ''), ('--input-size', int, None),
                                ('--mean', float, None), ('--std', float, None)):
        parser.add_argument(flag, type=kind, default=default)
    add_script_arguments(parser, train=True)
    return parser


def _patched(argv, train: bool = True) -> Dict[str, object]:
    """The names of train.py's module that the patches replace, replaced for `argv`."""
    namespace = dict(create_model=timm.create_model, create_optimizer_v2=create_optimizer_v2,
                     create_loader=create_loader, convert_sync_batchnorm=convert_sync_batchnorm,
                     ClassificationTask=ClassificationTask)
    ScriptPatches(_train_parser().parse_args(argv), train).install(namespace)
    return namespace


def test_the_group_is_in_the_parser_and_its_config():
    parser = _train_parser()
    group = [g for g in parser._action_groups if g.title == 'timm-gcp']
    assert len(group) == 1
    assert {a.dest for a in group[0]._group_actions} == launch.GCP_TRAIN_ARGS
    args = parser.parse_args([])
    assert options_in_use(args, train=True) == []
    assert (args.head_lr_scale, args.head_lr_scope, args.freeze_trunk, args.flip_test) == (None, 'classifier', None,
                                                                                           False)
    parser.set_defaults(**yaml.safe_load('head_lr_scale: 5\nflip_test: true\ntrain_crop_mode: squash\n'))
    args = parser.parse_args(['--freeze-trunk', '--crop-mode', 'squash'])
    assert args.freeze_trunk == 'head' and args.head_lr_scale == 5 and args.flip_test
    assert options_in_use(args, train=True) == ['--flip-test', '--head-lr-scale', '--freeze-trunk', '--crop-mode',
                                                '--train-crop-mode squash']
    assert parser.parse_args(['--no-flip-test', '--freeze-trunk', 'classifier']).freeze_trunk == 'classifier'
    assert not parser.parse_args(['--no-flip-test']).flip_test
    with pytest.raises(SystemExit):
        parser.parse_args(['--head-lr-scope', 'neck'])

    validate = argparse.ArgumentParser()
    validate.add_argument('--crop-mode', default=None)  # validate.py has its own
    add_script_arguments(validate, train=False)
    assert {a.dest for g in validate._action_groups if g.title == 'timm-gcp' for a in g._group_actions} == {
        'flip_test'}


@pytest.mark.parametrize('layer_decay, opt_kwargs', [(None, {}), (0.7, {'filter_bias_and_bn': False})])
def test_head_lr_through_the_optimizer_factory_at_every_update(layer_decay, opt_kwargs):
    """The patched create_optimizer_v2 against timm's own, both stepped by the same warm-up + cosine schedule, and
    an optimizer built again and loaded from the state dict, as train.py's --resume does."""
    k, updates = 5.0, 9
    torch.manual_seed(0)
    model = timm.create_model('resnet18_isqrt', **SMALL)
    patched = _patched(['--head-lr-scale', str(k)])['create_optimizer_v2']
    kwargs = dict(opt='momentum', lr=0.1, weight_decay=1e-3, layer_decay=layer_decay, **opt_kwargs)
    reference, scaled = create_optimizer_v2(model, **kwargs), patched(model, **kwargs)
    classifier = {id(p) for p in model.get_classifier().parameters()}
    schedulers = [create_scheduler_v2(o, sched='cosine', num_epochs=3, warmup_epochs=1, warmup_lr=1e-3,
                                      step_on_epochs=False, updates_per_epoch=3)[0] for o in (reference, scaled)]

    def lrs(optimizer):
        return {id(p): (g['lr'], g['weight_decay']) for g in optimizer.param_groups for p in g['params']}

    for update in range(updates + 1):
        before, after = lrs(reference), lrs(scaled)
        assert set(before) == set(after)
        for pid, (lr, wd) in before.items():
            assert after[pid] == (pytest.approx(lr * (k if pid in classifier else 1.0), rel=1e-12), wd)
        for scheduler in schedulers:
            scheduler.step_update(update + 1)
    resumed = patched(model, **kwargs)
    resumed.load_state_dict(scaled.state_dict())
    assert lrs(resumed) == lrs(scaled)


def test_frozen_trunk_and_flip_test_through_create_model():
    """What the patched create_model gives train.py (training with the trunk frozen: tests/test_finetune.py)."""
    create_model = _patched(['--freeze-trunk', 'classifier', '--flip-test'])['create_model']
    torch.manual_seed(0)
    model = create_model('resnet18_isqrt', **SMALL)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ['head.fc.weight', 'head.fc.bias']
    x = torch.randn(2, 3, 32, 32)
    model.train()
    with torch.no_grad():
        model(x)
    assert model.head.fc.training and not model.head.global_pool.training and not model.layer1.training
    model.eval()
    with torch.no_grad():
        mirrored = model.forward_head(model.forward_features(x.flip(-1)))
        assert torch.allclose(model(x), (model.forward_head(model.forward_features(x)) + mirrored) / 2, atol=1e-6)


@pytest.fixture(scope='module')
def wide_images(tmp_path_factory) -> Path:
    """An ImageFolder of 60 x 40 images (not square, so that squash and centre crops differ)."""
    root = tmp_path_factory.mktemp('wide')
    for label in ('a', 'b'):
        (root / 'train' / label).mkdir(parents=True)
        for i in range(2):
            pixels = torch.randint(0, 256, (40, 60, 3), generator=torch.Generator().manual_seed(i + 7 * len(label)),
                                   dtype=torch.uint8)
            Image.fromarray(pixels.numpy()).save(root / 'train' / label / f'{i}.png')
    return root


@pytest.mark.parametrize('mode, crop_pct, resize', [('squash', 0.875, (36, 36)), ('center', 1.0, 32)])
@pytest.mark.parametrize('hflip, prefetcher', [(0.0, False), (1.0, False), (1.0, True)])
def test_train_crop_is_the_originals(wide_images, mode, crop_pct, resize, hflip, prefetcher):
    """fast-MPN-COV's training crops: CUB Resize(448) + CenterCrop(448), Cars / Aircraft Resize((512, 512)) +
    CenterCrop(448), then the flip; here at 32 px against torchvision's transforms (uint8 for the prefetcher)."""
    create = _patched(['--train-crop-mode', mode, '--img-size', '32', '--crop-pct', str(crop_pct),
                       '--interpolation', 'bilinear'])['create_loader']
    dataset = create_dataset('', root=str(wide_images), split='train', is_training=True)
    create(dataset, input_size=(3, 32, 32), batch_size=2, is_training=True, train_crop_mode=mode, hflip=hflip,
           color_jitter=0.0, interpolation='random', use_prefetcher=prefetcher, num_workers=0,
           device=torch.device('cpu'))
    to_tensor = [transforms.PILToTensor()] if prefetcher else [
        transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    reference = transforms.Compose([
        transforms.Resize(resize, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(32), transforms.RandomHorizontalFlip(hflip), *to_tensor])
    for path, _ in dataset.reader.samples:
        image = Image.open(path).convert('RGB')
        got, expected = dataset.transform(image), reference(image)
        assert got.dtype == expected.dtype and torch.allclose(got.float(), expected.float(), atol=1e-6)


def test_eval_crop_mode_reaches_the_eval_loader_only_when_given(wide_images):
    for argv, expected in (([], 'center'), (['--crop-mode', 'squash'], 'squash')):
        create = _patched(argv)['create_loader']
        dataset = create_dataset('', root=str(wide_images), split='train')
        create(dataset, input_size=(3, 32, 32), batch_size=2, is_training=False, crop_pct=0.875,
               interpolation='bilinear', use_prefetcher=False, num_workers=0, device=torch.device('cpu'))
        resize = dataset.transform.transforms[0]
        assert isinstance(resize, transforms.Resize) and isinstance(resize.size, int) == (expected == 'center')


def test_ddp_device_ids():
    assert ddp_device_ids([torch.device('cpu')]) is None and ddp_device_ids(None) is None
    assert ddp_device_ids([torch.device('cuda', 1)]) == [torch.device('cuda', 1)]


def test_cpu_sync_batchnorm_is_batchnorm_without_a_process_group():
    """Outside DDP the converted layers are the BatchNorm they were (timm's BatchNormAct2d with its activation)."""
    torch.manual_seed(0)
    model = timm.create_model('mobilenetv3_large_100_isqrt', num_classes=3, gcp_dim=8)
    reference = timm.create_model('mobilenetv3_large_100_isqrt', num_classes=3, gcp_dim=8)
    reference.load_state_dict(model.state_dict())
    keys = list(model.state_dict())
    sync_batchnorm_on_cpu(model)
    assert list(model.state_dict()) == keys
    norms = [m for m in model.modules() if isinstance(m, CpuSyncBatchNorm)]
    assert len(norms) == sum(isinstance(m, nn.BatchNorm2d) for m in reference.modules())
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())  # DDP refuses those on the CPU
    x = torch.randn(4, 3, 64, 64)
    assert torch.allclose(model(x), reference(x), atol=1e-5)


# --- DDP on the CPU: two gloo processes against one process on the concatenated batch -----------------------

K = 5.0
STEPS = 2


def _ddp_model(patches: Dict[str, object]) -> nn.Module:
    torch.manual_seed(0)
    return patches['create_model']('resnet18_isqrt', **SMALL)


def _batches(world_size: int, rank: int):
    """Each step's global batch of 8 (seeded), the part of `rank`."""
    generator = torch.Generator().manual_seed(3)
    for _ in range(STEPS):
        x, y = torch.randn(8, 3, 32, 32, generator=generator), torch.randint(0, 3, (8,), generator=generator)
        per = 8 // world_size
        yield x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]


def _train(rank: int, world_size: int, out: str) -> None:
    """As train.py with --freeze-trunk --head-lr-scale 5 --sync-bn --device cpu: the launcher's names, train.py's
    order (model, sync-bn, task, optimizer, DDP), then a few steps."""
    patches = _patched(['--freeze-trunk', '--head-lr-scale', str(K)])  # the GCP head trains, its classifier at K x
    model = _ddp_model(patches)
    if world_size > 1:
        model = patches['convert_sync_batchnorm'](model)
    task = patches['ClassificationTask'](model=model, criterion=nn.CrossEntropyLoss(), verbose=False)
    optimizer = patches['create_optimizer_v2'](task.get_trainable_module(), opt='momentum', lr=0.05,
                                                momentum=0.9, weight_decay=1e-3)
    if world_size > 1:
        task.prepare_distributed(device_ids=[torch.device('cpu')])
    losses = []
    for x, y in _batches(world_size, rank):
        task.train()
        loss = task(x, y)['loss']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    torch.save(dict(state=model.state_dict(), losses=losses, lrs=[g['lr'] for g in optimizer.param_groups]),
               os.path.join(out, f'rank{rank}.pt'))


def _ddp_worker(rank: int, world_size: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        _train(rank, world_size, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two processes
def test_ddp_on_the_cpu_with_sync_bn_frozen_trunk_and_head_lr_equals_one_process(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / 'rendezvous'), str(tmp_path)), nprocs=2)
    one = tmp_path / 'one'
    one.mkdir()
    _train(0, 1, str(one))
    r0, r1, single = (torch.load(p, weights_only=True) for p in (tmp_path / 'rank0.pt', tmp_path / 'rank1.pt',
                                                                  one / 'rank0.pt'))
    init = _ddp_model(_patched([])).state_dict()
    for key, value in single['state'].items():
        assert torch.equal(r0['state'][key], r1['state'][key]), key  # the replicas agree exactly
        if key.startswith('head.'):
            assert torch.allclose(r0['state'][key].float(), value.float(), rtol=1e-4, atol=1e-6), key
        else:
            assert torch.equal(r0['state'][key], init[key]) and torch.equal(value, init[key]), key  # frozen trunk
    # the head's BatchNorm trained on the global batch: its statistics moved, as one process moves them
    assert not torch.equal(single['state']['head.global_pool.reduce.bn.running_var'],
                           init['head.global_pool.reduce.bn.running_var'])
    assert not torch.allclose(single['state']['head.fc.weight'], init['head.fc.weight'])
    for step in range(STEPS):  # the mean of the ranks' losses is the loss of the concatenated batch
        assert float(r0['losses'][step] + r1['losses'][step]) / 2 == pytest.approx(float(single['losses'][step]),
                                                                                 rel=1e-5)
    assert r0['lrs'] == single['lrs'] and sorted(set(single['lrs'])) == [0.05, 0.05 * K]


@pytest.mark.slow  # two processes
def test_ddp_sync_bn_gradients_equal_one_process(tmp_path):
    """CpuSyncBatchNorm alone, in float64: output, input and weight gradients, running statistics."""
    mp.spawn(_bn_worker, args=(2, str(tmp_path / 'rendezvous'), str(tmp_path)), nprocs=2)
    x, weight = _bn_inputs()
    bn = _bn()
    x.requires_grad_(True)
    out = bn(x)
    (out * weight).sum().backward()
    for rank in range(2):
        got = torch.load(tmp_path / f'bn{rank}.pt', weights_only=True)
        part = slice(rank * 3, (rank + 1) * 3)
        assert torch.allclose(got['out'], out[part].detach(), atol=1e-12)
        assert torch.allclose(got['grad'], x.grad[part], atol=1e-12)
        assert torch.allclose(got['weight_grad'], bn.weight.grad, atol=1e-12)
        assert torch.allclose(got['running_var'], bn.running_var, atol=1e-12)
        assert torch.allclose(got['running_mean'], bn.running_mean, atol=1e-12)


def _bn() -> nn.BatchNorm2d:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn


def _bn_inputs():
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(6, 4, 5, 5, generator=generator, dtype=torch.float64) * 3 + 1,
            torch.randn(6, 4, 5, 5, generator=generator, dtype=torch.float64))


def _bn_worker(rank: int, world_size: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        bn = sync_batchnorm_on_cpu(nn.Sequential(_bn()))[0]
        x, weight = _bn_inputs()
        x = x[rank * 3:(rank + 1) * 3].clone().requires_grad_(True)
        out_ = bn(x)
        # the loss of the whole batch is the sum over the ranks: no averaging, so gradients add up as they are
        (out_ * weight[rank * 3:(rank + 1) * 3]).sum().backward()
        weight_grad = bn.weight.grad.clone()
        dist.all_reduce(weight_grad)
        torch.save(dict(out=out_.detach(), grad=x.grad, weight_grad=weight_grad, running_var=bn.running_var,
                        running_mean=bn.running_mean), os.path.join(out, f'bn{rank}.pt'))
    finally:
        dist.destroy_process_group()


# --- the launcher's checks (with the train.py stub of tests/helpers/scripts.py, named train.py) -------------

def _error(capsys, argv) -> str:
    """What `timm-gcp launch ARGV` says on stderr, where it exits 2 (a usage error)."""
    assert launch.main(argv) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize('args, expected', [
    (['--head-lr-scale', '0'], '--head-lr-scale must be positive, got 0.0'),
    (['--train-crop-mode', 'squash', '--aug-splits', '2'], '--train-crop-mode squash (the evaluation crop'),
    (['--freeze-trunk', '--torchscript'], '--flip-test and --freeze-trunk add forward hooks, which --torchscript'),
])
def test_bad_options_are_named_before_the_script_runs(tmp_path, capsys, args, expected):
    script = _stub_with(tmp_path, "'--train-crop-mode'", "'--aug-splits', type=int, default=0",
                        "'--torchscript', action='store_true'")
    data = write_image_folder(tmp_path / 'data', per_class=1, size=8)
    assert expected in _error(capsys, [str(script), '--data-dir', str(data), *args])


@pytest.mark.parametrize('saved, args, expected', [
    (5.0, ['--head-lr-scale', '5'], None),
    (None, [], None),
    (5.0, ['--head-lr-scale', '5', '--no-resume-opt'], None),
    (5.0, ['--head-lr-scale', '2'], 'its optimizer was built with --head-lr-scale 5, this run asks for '
                                    '--head-lr-scale 2, and resuming would keep'),
    (5.0, [], 'its optimizer was built with --head-lr-scale 5, this run asks for none'),
    (None, ['--head-lr-scale', '5'], 'its optimizer was built with no --head-lr-scale, this run asks for'),
])
def test_a_resumed_optimizer_with_another_head_lr_is_named(tmp_path, capsys, saved, args, expected):
    """train.py loads the checkpoint's param groups with their scale: a different --head-lr-scale would be lost."""
    model = timm.create_model('resnet18_isqrt', **SMALL)
    optimizer = create_optimizer_v2(model, opt='momentum', lr=0.1)
    if saved is not None:
        scale_head_lr(optimizer, model, saved, 'classifier')
    checkpoint = tmp_path / 'last.pth.tar'
    torch.save(dict(arch='resnet18_isqrt', state_dict=model.state_dict(), optimizer=optimizer.state_dict()),
                checkpoint)
    script = _stub_with(tmp_path, "'--resume', default=''", "'--no-resume-opt', action='store_true'")
    data = write_image_folder(tmp_path / 'data', per_class=1, size=8)
    argv = [str(script), '--data-dir', str(data), '--model', 'resnet18_isqrt', '--resume', str(checkpoint), *args,
            '--check-only']
    if expected is None:
        assert launch.main(argv) == 0
    else:
        assert expected in _error(capsys, argv)


def test_a_config_value_that_names_no_head_is_refused(tmp_path, capsys):
    """argparse checks choices on the command line only; `freeze_trunk: true` in a --config file is named."""
    script = _stub_with(tmp_path)
    data = write_image_folder(tmp_path / 'data', per_class=1, size=8)
    config = tmp_path / 'probe.yaml'
    config.write_text('freeze_trunk: true\n')
    err = _error(capsys, [str(script), '--config', str(config), '--data-dir', str(data)])
    assert ("--freeze-trunk True names no head; valid: head, classifier (in a --config file, e.g. "
            "'freeze_trunk: head')") in err


def test_options_of_other_scripts_are_refused(tmp_path, capsys):
    folder = tmp_path / 'scripts'
    folder.mkdir()
    for name in ('benchmark.py', 'validate.py'):
        (folder / name).write_text('import argparse\nparser = argparse.ArgumentParser()\n'
                                   "parser.add_argument('--model', default='resnet18')\n"
                                   "if __name__ == '__main__':\n    parser.parse_args()\n")
    err = _error(capsys, [str(folder / 'benchmark.py'), '--flip-test'])
    assert '--flip-test is an option of timm-gcp launch for train.py and validate.py only, not benchmark.py' in err
    err = _error(capsys, [str(folder / 'validate.py'), '--head-lr-scale', '5'])
    assert '--head-lr-scale is an option of timm-gcp launch for train.py only, not validate.py' in err


def test_a_head_the_model_lacks_is_named(tmp_path, capsys):
    script = _stub_with(tmp_path, "'--num-classes', type=int",
                        "'--model-kwargs', nargs='*', default={}, action=ParseKwargs")
    data = write_image_folder(tmp_path / 'data', per_class=1, size=8)
    err = _error(capsys, [str(script), '--data-dir', str(data), '--model', 'resnet18', '--freeze-trunk',
                          'classifier', '--model-kwargs', 'num_classes=0'])
    assert '--freeze-trunk: --model resnet18 has no classifier to train' in err


def test_a_train_py_without_the_names_is_refused(tmp_path, capsys):
    """The stub has no create_optimizer_v2 / create_loader: the options cannot be applied, and the launcher says so."""
    script = _stub_with(tmp_path)
    data = write_image_folder(tmp_path / 'data', per_class=1, size=8)
    err = _error(capsys, [str(script), '--data-dir', str(data), '--out', str(tmp_path), '--flip-test'])
    assert 'has no module-level create_model, create_optimizer_v2, create_loader' in err


def test_help_lists_the_launchers_group(stub, capsys):
    with pytest.raises(SystemExit) as e:
        launch.main([str(stub), '--help'])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert 'timm-gcp:' in out and '--head-lr-scale K' in out and '--freeze-trunk' in out


def test_without_options_the_script_runs_as_main(stub, data, tmp_path):
    from tests.helpers.scripts import stub_record
    with pytest.raises(SystemExit) as e:
        launch.main([str(stub), '--data-dir', str(data), '--out', str(tmp_path)])
    assert e.value.code == 0 and stub_record(tmp_path)['name'] == '__main__'


def _stub_with(tmp_path: Path, *arguments: str) -> Path:
    """tests/helpers/scripts.py's train.py stub with more arguments (each what `parser.add_argument` takes)."""
    from tests.helpers.scripts import write_train_stub
    script = write_train_stub(tmp_path / 'scripts')
    extra = ''.join(f"parser.add_argument({a})\n" for a in arguments)
    text = script.read_text().replace("parser.add_argument('--fail'", extra + "parser.add_argument('--fail'")
    text = text.replace('import timm\n', 'import timm\nfrom timm.utils import ParseKwargs\n')
    script.write_text(text)
    return script
