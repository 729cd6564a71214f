"""Faults: processes killed with SIGKILL midway, then what they leave behind.

A training loop on timm's API (CheckpointSaver, resume_checkpoint) killed mid-epoch resumes from its
last checkpoint to the same weights as a run that was not killed. `timm-gcp convert`, `publish
--dry-run` and `cards` killed while writing leave their outputs whole or absent: each runs in a
subprocess whose profiler hook (sys.setprofile, in the test's driver, not in the library) sends the
process SIGKILL at the N-th call of a chosen I/O builtin (a file write, safetensors' serializer,
the rename that completes a folder), so the kill lands inside the write, wherever it happens.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import timm
import torch

from timm_gcp.convert.converter import convert_checkpoint

from tests.helpers import REPO
from tests.helpers.layouts import mindspore_layout, write_mindspore_checkpoint
from tests.helpers.weights import randomize

FIXTURES = Path(__file__).parent / 'fixtures' / 'mindspore'

TRAIN = '''
import os, signal, sys
import torch
import torch.nn.functional as F
import timm
from timm.models import resume_checkpoint
from timm.utils import CheckpointSaver
import timm_gcp

out, epochs, kill_at_step, resume = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(1)
torch.manual_seed(0)
model = timm.create_model('resnet18_dropcov', num_classes=3, gcp_dim=8)  # DropCov: random in training
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
saver = CheckpointSaver(model, optimizer, checkpoint_dir=out, recovery_dir=out, max_history=2)
start = resume_checkpoint(model, resume, optimizer=optimizer) if resume else 0
step = 0
for epoch in range(start, epochs):
    data = torch.Generator().manual_seed(epoch)  # each epoch's batches and dropout draws depend on it alone
    torch.manual_seed(1000 + epoch)
    model.train()
    for _ in range(3):
        x, y = torch.randn(4, 3, 32, 32, generator=data), torch.randint(0, 3, (4,), generator=data)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step == kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
    saver.save_checkpoint(epoch, metric=-loss.item())
torch.save(model.state_dict(), os.path.join(out, 'final.pt'))
'''

# runs `timm-gcp ARGS` and SIGKILLs itself at the COUNT-th call of the builtin named NAME made after the
# first folder made or file opened for writing (the profiler, slow on every call, is only switched on from there)
KILL_AT = '''
import os, signal, sys
from timm_gcp import cli

name, count, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
calls = 0


def profile(frame, event, arg):
    global calls
    if event == 'c_call' and getattr(arg, '__name__', '') == name:
        calls += 1
        if calls == count:
            os.kill(os.getpid(), signal.SIGKILL)


def audit(event, args):
    if sys.getprofile() is not None:
        return
    writes = event == 'open' and (
        (args[1] and any(c in args[1] for c in 'wax+')) or (args[2] or 0) & (os.O_WRONLY | os.O_RDWR))
    if writes or event == 'os.mkdir':
        sys.setprofile(profile)


sys.addaudithook(audit)
sys.exit(cli.main(argv))
'''


def _python(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')])))
    return subprocess.run([sys.executable, '-c', script, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def _train(out: Path, kill_at_step: int = 0, resume: str = '') -> subprocess.CompletedProcess:
    out.mkdir(exist_ok=True)
    return _python(TRAIN, str(out), '3', str(kill_at_step), resume, cwd=out)


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_to_the_same_weights(tmp_path):
    whole = _train(tmp_path / 'whole')
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = _train(tmp_path / 'killed', kill_at_step=7)  # epoch 2 of 0..2, after its first step
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / 'killed' / 'final.pt').exists()
    checkpoint = torch.load(tmp_path / 'killed' / 'last.pth.tar', map_location='cpu', weights_only=False)
    assert checkpoint['epoch'] == 1
    resumed = _train(tmp_path / 'killed', resume=str(tmp_path / 'killed' / 'last.pth.tar'))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = torch.load(tmp_path / 'whole' / 'final.pt')
    got = torch.load(tmp_path / 'killed' / 'final.pt')
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)


def _kill_at(name: str, count: int, argv: List[str], cwd: Path) -> subprocess.CompletedProcess:
    return _python(KILL_AT, name, str(count), *argv, cwd=cwd)


def _visible(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith('.'))


CONVERT = ['convert', str(FIXTURES / 'ms_resnet50_dropcov_tiny.ckpt'), '--model', 'ms_resnet50_dropcov.tpami_in1k',
           '--model-kwargs', 'layers=(2, 1, 1, 1)', 'channels=(8, 8, 16, 32)', 'gcp_dim=8']


@pytest.mark.slow
def test_convert_killed_midway_leaves_no_output(tmp_path):
    # killed inside safetensors' serializer: the weights are half-written
    proc = _kill_at('serialize_file', 1, [*CONVERT, '--out', str(tmp_path / 'converted')], tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert _visible(tmp_path) == []
    # a second run writes the folder whole, in spite of what the killed one left
    proc = _kill_at('none', 0, [*CONVERT, '--out', str(tmp_path / 'converted')], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _visible(tmp_path / 'converted') == ['config.json', 'model.safetensors', 'provenance.json']


PUBLISHED = 'ms_resnet18_isqrt.tpami_in1k'


@pytest.fixture(scope='module')
def converted(tmp_path_factory) -> Path:
    """A `timm-gcp convert` folder of PUBLISHED (default settings, so publish takes it), from a MindSpore file."""
    root = tmp_path_factory.mktemp('converted')
    source = randomize(timm.create_model(PUBLISHED))
    checkpoint = write_mindspore_checkpoint(root / 'R18.ckpt', mindspore_layout(source.state_dict(), True))
    convert_checkpoint(checkpoint, PUBLISHED, root / 'converted')
    return root / 'converted'


@pytest.mark.slow
def test_publish_dry_run_killed_midway_leaves_no_output(tmp_path, converted):
    staged = tmp_path / 'staged'
    argv = ['publish', str(converted), '--repo-id', f'timm-gcp/{PUBLISHED}', '--dry-run', '--out', str(staged)]
    proc = _kill_at('write', 1, argv, tmp_path)  # the first text file (config.json or the card) half-written
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not staged.exists()
    proc = _kill_at('none', 0, argv, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _visible(staged) == ['README.md', 'config.json', 'model.safetensors', 'provenance.json']


WRITE_TEXT = '''
import os, signal, sys
from timm_gcp.hub import cards



def profile(frame, event, arg):
    if event == 'c_call' and getattr(arg, '__name__', '') == 'write':
        os.kill(os.getpid(), signal.SIGKILL)


# how `timm-gcp cards` writes each card and the README, killed inside the file write
sys.setprofile(profile)
cards.write_text_atomic(sys.argv[1], 'new ' * 1_000_000)
'''


def test_a_card_killed_while_written_keeps_its_old_text(tmp_path):
    # `timm-gcp cards` rewrites the cards and the README through write_text_atomic
    card = tmp_path / 'card.md'
    card.write_text('old card\n')
    proc = _python(WRITE_TEXT, str(card), cwd=tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert card.read_text() == 'old card\n' and _visible(tmp_path) == ['card.md']
