"""What timm's train.py relies on, through timm's library API, with GCP models on the CPU.

timm's scripts are not on PyPI, so the pieces train.py calls are driven here directly: an
ImageFolder through `create_dataset` / `create_loader`, `create_optimizer_v2`,
`create_scheduler_v2`, `timm.task.ClassificationTask` with model EMA, `CheckpointSaver` and the
task's resume helpers, the task's evaluator, and DistributedDataParallel with the gloo backend.
"""
import argparse
import os
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import timm
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from timm.data import create_dataset, create_loader, resolve_data_config
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.task import ClassificationTask, load_task_ema_checkpoint, resume_task_checkpoint
from timm.utils import CheckpointSaver, distribute_bn

import timm_gcp  # noqa: F401  (registers the models)

from tests.helpers.images import write_image_folder

pytestmark = pytest.mark.slow  # real training loops and a two-process DDP run

IMG_SIZE = 32
MODEL_KWARGS = dict(num_classes=2, gcp_dim=16)


def _loader(root: Path, model: torch.nn.Module, split: str, is_training: bool):
    dataset = create_dataset('', root=str(root), split=split, is_training=is_training)
    data_config = resolve_data_config({'input_size': (3, IMG_SIZE, IMG_SIZE)}, model=model)
    return create_loader(
        dataset,
        input_size=data_config['input_size'],
        batch_size=8,
        is_training=is_training,
        interpolation=data_config['interpolation'],
        mean=data_config['mean'],
        std=data_config['std'],
        num_workers=0,
        use_prefetcher=False,
        device=torch.device('cpu'),
    )


def _make_task(model: torch.nn.Module):
    task = ClassificationTask(model, verbose=False)
    optimizer = create_optimizer_v2(task.get_trainable_module(), opt='momentum', lr=0.05, momentum=0.9,
                                    weight_decay=1e-4)
    task.setup_ema(decay=0.9)
    return task, optimizer


def _state_equal(a: Dict, b: Dict) -> bool:
    """Whether two (nested) state dicts hold the same keys and exactly equal tensors and values."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_state_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_state_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


def test_train_checkpoint_resume_and_evaluate_ema(tmp_path):
    torch.manual_seed(0)
    root = write_image_folder(tmp_path / 'data')
    model = timm.create_model('resnet18_isqrt', **MODEL_KWARGS)
    task, optimizer = _make_task(model)
    scheduler, num_epochs = create_scheduler_v2(optimizer, sched='step', num_epochs=3, decay_epochs=2,
                                                decay_rate=0.1, warmup_epochs=0)
    loader = _loader(root, model, 'train', is_training=True)
    assert len(loader.dataset) == 48

    epoch_losses: List[float] = []
    step = 0
    for epoch in range(num_epochs):
        task.train()
        losses = []
        for x, y in loader:
            loss = task(x, y)['loss']
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            task.update_ema(step=step)
            losses.append(loss.item())
        scheduler.step(epoch + 1)
        epoch_losses.append(float(np.mean(losses)))
    assert all(np.isfinite(epoch_losses))
    assert epoch_losses[-1] < 0.7 * epoch_losses[0], epoch_losses
    assert optimizer.param_groups[0]['lr'] == pytest.approx(0.005)

    saver = CheckpointSaver(
        model=model, optimizer=optimizer, args=argparse.Namespace(model='resnet18_isqrt'),
        checkpoint_dir=str(tmp_path / 'ckpt'), recovery_dir=str(tmp_path / 'ckpt'), task=task)
    os.makedirs(tmp_path / 'ckpt')
    saver.save_checkpoint(num_epochs - 1, metric=epoch_losses[-1])
    checkpoint = tmp_path / 'ckpt' / 'last.pth.tar'
    assert checkpoint.is_file() and (tmp_path / 'ckpt' / f'checkpoint-{num_epochs - 1}.pth.tar').is_file()

    torch.manual_seed(1)  # a different init, all of which the checkpoint must overwrite
    resumed = timm.create_model('resnet18_isqrt', **MODEL_KWARGS)
    resumed_task, resumed_optimizer = _make_task(resumed)
    assert not _state_equal(resumed.state_dict(), model.state_dict())
    start_epoch = resume_task_checkpoint(resumed_task, str(checkpoint), optimizer=resumed_optimizer, log_info=False)
    load_task_ema_checkpoint(resumed_task, str(checkpoint))
    assert start_epoch == num_epochs
    assert _state_equal(resumed.state_dict(), model.state_dict())
    assert _state_equal(resumed_optimizer.state_dict(), optimizer.state_dict())
    ema, resumed_ema = task.get_eval_model(ema=True), resumed_task.get_eval_model(ema=True)
    assert _state_equal(resumed_ema.state_dict(), ema.state_dict())
    assert not _state_equal(ema.state_dict(), model.state_dict())  # the EMA really averages

    # one more step from the same state gives the same weights: momentum buffers were restored too
    x, y = next(iter(loader))
    for t, opt in ((task, optimizer), (resumed_task, resumed_optimizer)):
        t.train()
        loss = t(x, y)['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _state_equal(resumed.state_dict(), model.state_dict())

    eval_model = resumed_task.get_eval_model(ema=True)
    eval_model.eval()
    evaluator = resumed_task.create_evaluator()
    with torch.no_grad():
        for x, y in _loader(root, model, 'validation', is_training=False):
            evaluator.update(eval_model(x), y)
    metrics = evaluator.compute()
    assert evaluator.num_samples == 48
    assert np.isfinite(metrics['loss']) and 0.0 <= metrics['top1'] <= 100.0


def _ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    """One rank: a DropCov model with active channel dropout, trained a few steps on its own data under DDP."""
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        torch.manual_seed(rank)  # different initial weights per rank: DDP must start from rank 0's
        model = timm.create_model('resnet18_dropcov', num_classes=4, gcp_dim=16, gcp_dropcov_scale=1.0)
        init_state = {k: v.clone() for k, v in model.state_dict().items()}
        dropped: List[float] = []
        model.head.global_pool.dropcov.register_forward_hook(
            lambda m, i, out: dropped.append((out.abs().sum((2, 3)) == 0).float().mean().item()))
        task = ClassificationTask(model, verbose=False).prepare_distributed(device_ids=None)
        optimizer = create_optimizer_v2(task.get_trainable_module(), opt='momentum', lr=0.05, momentum=0.9,
                                        weight_decay=1e-4)
        generator = torch.Generator().manual_seed(100 + rank)
        losses = []
        for _ in range(3):
            x = torch.randn(4, 3, 48, 48, generator=generator)
            y = torch.randint(0, 4, (4,), generator=generator)
            loss = task(x, y)['loss']
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        params = {k: v.detach().clone() for k, v in model.named_parameters()}
        distribute_bn(model, world_size, reduce=True)  # train.py's --dist-bn reduce
        torch.save(dict(init=init_state, params=params, state=model.state_dict(), losses=losses, dropped=dropped),
                   os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_ddp_gloo_keeps_replicas_identical_with_dropcov(tmp_path):
    world_size = 2
    mp.spawn(_ddp_worker, args=(world_size, str(tmp_path / 'rendezvous'), str(tmp_path)), nprocs=world_size)
    r0, r1 = (torch.load(tmp_path / f'rank{r}.pt', weights_only=True) for r in range(world_size))

    assert not _state_equal(r0['init'], r1['init'])  # the replicas started different...
    assert r0['losses'] != r1['losses']  # ...saw different data...
    assert min(r0['dropped']) > 0 and min(r1['dropped']) > 0  # ...and DropCov dropped channels in every step
    assert _state_equal(r0['params'], r1['params'])  # yet the parameters stay identical
    assert _state_equal(r0['state'], r1['state'])  # and BN statistics agree after distribute_bn
    assert not _state_equal(r0['params'], {k: r0['init'][k] for k in r0['params']})  # training moved them
