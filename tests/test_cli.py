"""The `timm-gcp` command (`timm_gcp.cli.main`): exit status and messages, missing extras, `cards`, `launch`.

The subcommands' own behaviour is tested with their modules (test_convert.py, test_hub.py, test_demo.py,
test_benchmark.py, test_launch.py); here, what the command adds (docs/architecture.md, "Commands") and
the two subcommands without a test module of their own.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import importlib
import json

import pytest
import torch

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp import _errors, _extras, cli, launch
from timm_gcp.demo import side_by_side
from timm_gcp.hub.cards import TABLE_END, TABLE_START, WEIGHTS_END, WEIGHTS_START

from tests.helpers import REPO
from tests.helpers.commands import main_interrupted
from tests.helpers.scripts import stub_record


def _main(argv):
    """cli.main in this process; a script's sys.exit code, or main's return value."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code


# --- the command --------------------------------------------------------------------------------------------

def test_help_lists_every_subcommand(capsys):
    assert _main(['--help']) == 0
    out = capsys.readouterr().out
    for name in ('demo', 'analyze', 'bench', 'bench-layers', 'convert', 'publish', 'cards', 'launch'):
        assert name in out
    assert _main(['no-such-command']) == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


# --- exit status and message: a usage mistake 2, a failure 1, one line each; a bug keeps its traceback -------

def _usage_mistake(name: str, tmp: Path, stub: Path, data: Path) -> list:
    """One mistake in the command line of each command."""
    return {
        'demo': ['--model', 'resnet18'],
        'analyze': ['--corruptions', 'fog'],
        'probe': ['--trunk', 'resnet18_isqrt', '--out-dir', str(tmp / 'out')],
        'bench': ['--models', 'gcp_isqrt'],  # a generic GCP model without --model-kwargs backbone=...
        'bench-layers': ['--memory-maps', '14by14'],
        'convert': [str(tmp / 'missing.pth'), '--model', 'resnet18_isqrt', '--out', str(tmp / 'out')],
        'publish': [str(tmp), '--repo-id', 'no-org', '--dry-run', '--out', str(tmp / 'out')],
        'release': [str(tmp), '--org', 'someone', '--dry-run', '--out', str(tmp / 'out')],
        'cards': ['--readme', str(tmp / 'README.md'), '--cards', str(tmp / 'out')],
        'export-onnx': ['resnet18_nope', '--out', str(tmp / 'out' / 'x.onnx')],
        'launch': [str(stub), '--model', 'resnet18_isqrtt', '--data-dir', str(data)],
    }[name]


USAGE_MESSAGES = {
    'demo': "--model 'resnet18' is not a GCP ResNet; choose one of: ",
    'analyze': "unknown corruption 'fog'; valid: gaussian_noise",
    'probe': "--trunk 'resnet18_isqrt' is a GCP model",
    'bench': 'gcp_isqrt: gcp_isqrt needs backbone=<timm model name>',
    'bench-layers': "--memory-maps '14by14': not HxW",
    'convert': 'missing.pth: no such file',
    'publish': "'no-org': not a Hub repo id (ORG/NAME)",
    'release': "holds no authors' file of any release tag",
    'cards': 'README.md: no such file',
    'export-onnx': 'resnet18_nope: Unknown model (resnet18_nope)',
    'launch': "--model 'resnet18_isqrtt': no such model in timm's registry",
}


@pytest.mark.parametrize('name', list(cli.SUBCOMMANDS))
def test_a_usage_mistake_exits_2_with_one_line(name, tmp_path, stub, data, capsys):
    assert cli.main([name, *_usage_mistake(name, tmp_path, stub, data)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f'timm-gcp {name}: error: ') and captured.err.count('\n') == 1, captured.err
    assert USAGE_MESSAGES[name] in captured.err
    assert not (tmp_path / 'out').exists()


def test_bench_on_a_cuda_device_without_cuda_is_a_usage_mistake(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert cli.main(['bench', '--models', 'resnet18', '--device', 'cuda']) == 2
    assert capsys.readouterr().err == (
        "timm-gcp bench: error: --device is 'cuda', but CUDA is not available here: pass --device cpu\n")


NONE_KWARG = ('--model-kwargs gcp_dim=None: timm.create_model drops None arguments, so gcp_dim would silently keep '
              'its default; for no reduction pass gcp_dim=0\n')


@pytest.mark.parametrize('name, argv', [
    ('convert', ['{tmp}/model_best.pth.tar', '--out', '{tmp}/out']),
    ('export-onnx', ['resnet18_isqrt', '--out', '{tmp}/out/x.onnx']),
    ('bench', ['--models', 'resnet18_isqrt']),
    ('analyze', ['--data-dir', '{tmp}']),
])
def test_a_none_model_kwarg_is_refused_naming_the_fix(name, argv, tmp_path, capsys):
    """KEY=None would be dropped by timm.create_model: the model would silently be the default one."""
    (tmp_path / 'model_best.pth.tar').write_bytes(b'')
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert cli.main([name, *argv, '--model-kwargs', 'gcp_dim=None']) == 2
    assert capsys.readouterr().err == f'timm-gcp {name}: error: {NONE_KWARG}'
    assert not (tmp_path / 'out').exists()


def _paths(tmp: Path) -> None:
    """A train.py run folder (its checkpoint files, empty), a file and an empty folder under `tmp`."""
    for name in ('last.pth.tar', 'model_best.pth.tar'):
        (tmp / 'run' / name).parent.mkdir(exist_ok=True)
        (tmp / 'run' / name).write_bytes(b'')
    (tmp / 'file').write_text('mine')
    (tmp / 'folder').mkdir()


@pytest.mark.parametrize('name, argv, expected', [
    ('convert', ['{tmp}/run', '--out', '{tmp}/out'],
     '{tmp}/run: is a folder, not a file: give the file, e.g. {tmp}/run/model_best.pth.tar (it holds '
     'model_best.pth.tar, last.pth.tar)'),
    ('convert', ['{tmp}/run/model_best.pth.tar', '--out', '{tmp}/file', '--overwrite'],
     '--out {tmp}/file: is a file, not a folder (the export is a folder of files)'),
    ('export-onnx', ['resnet18_isqrt', '--checkpoint', '{tmp}/run', '--out', '{tmp}/out/x.onnx'],
     "--checkpoint '{tmp}/run': is a folder, not a file: give the file, e.g. {tmp}/run/model_best.pth.tar"),
    ('export-onnx', ['resnet18_isqrt', '--out', '{tmp}/folder', '--overwrite'],
     "--out '{tmp}/folder': is a folder; give the path of the .onnx file to write"),
    ('export-onnx', ['resnet18_isqrt', '--model-kwargs', 'gcp_dim=8', '--img-size', '8', '--out', '{tmp}/out/x.onnx'],
     'resnet18_isqrt cannot take 3x8x8 inputs (--img-size 8): GCP pooling got a 1x1 feature map'),
    ('publish', ['{tmp}/file', '--repo-id', 'a/b', '--dry-run', '--out', '{tmp}/out'],
     '{tmp}/file: is a file, not a folder (expected a `timm-gcp convert` output folder)'),
    ('publish', ['{tmp}/nope', '--repo-id', 'a/b', '--dry-run', '--out', '{tmp}/out'],
     '{tmp}/nope: no such folder (expected a `timm-gcp convert` output folder)'),
    ('publish', ['{tmp}/folder', '--repo-id', 'a/b', '--dry-run', '--out', '{tmp}/file', '--overwrite'],
     '--out {tmp}/file: is a file, not a folder'),
    ('release', ['{tmp}/file', '--org', 'a', '--dry-run', '--out', '{tmp}/out'], '{tmp}/file: is a file, not a folder'),
    ('cards', ['--check', '--readme', '{tmp}/folder'], '{tmp}/folder: is a folder, not a file (run from a checkout'),
    ('cards', ['--cards', '{tmp}/file', '--readme', '{tmp}/folder'], '--cards {tmp}/file: is a file, not a folder'),
    ('bench', ['--models', 'resnet18', '--json', '{tmp}/folder'], "--json '{tmp}/folder': is a folder; give the path "
                                                                  'of the JSON file to write'),
    ('analyze', ['--data-dir', '{tmp}/file'], "--data-dir '{tmp}/file': is a file, not a folder"),
    ('analyze', ['--data-dir', '{tmp}/folder', '--out-dir', '{tmp}/file'], "--out-dir '{tmp}/file': is a file, not "
                                                                           'a folder'),
    ('demo', ['--data-dir', '{tmp}/folder', '--out-dir', '{tmp}/file'], "--out-dir '{tmp}/file': is a file, not a "
                                                                        'folder'),
])
def test_a_path_of_the_wrong_kind_is_named_before_any_work(name, argv, expected, tmp_path, capsys):
    """A folder for a file (a run folder for its checkpoint), a file for a folder, and --out over a file of the user."""
    _paths(tmp_path)
    assert cli.main([name, *(a.format(tmp=tmp_path) for a in argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'timm-gcp {name}: error: {expected.format(tmp=tmp_path)}') and err.count('\n') == 1, err
    assert (tmp_path / 'file').read_text() == 'mine' and not (tmp_path / 'out').exists()


def _failing_convert(tmp: Path) -> list:
    bad = tmp / 'bad.pth'
    bad.write_bytes(b'PK\x03\x04' + bytes(100))
    return [str(bad), '--model', 'resnet18_isqrt', '--out', str(tmp / 'out')]


def _failing_publish(tmp: Path) -> list:
    src = tmp / 'src'
    src.mkdir()
    (src / 'config.json').write_text(json.dumps({'architecture': 'resnet18', 'num_classes': 10}))
    (src / 'model.safetensors').write_bytes(b'')
    return [str(src), '--repo-id', 'someone/x', '--dry-run', '--out', str(tmp / 'out')]


def _failing_export(tmp: Path) -> list:
    checkpoint = tmp / 'other.pth'
    torch.save({'fc.weight': torch.zeros(2, 2)}, checkpoint)
    return ['resnet18_isqrt', '--model-kwargs', 'gcp_dim=8', '--checkpoint', str(checkpoint), '--img-size', '32',
            '--out', str(tmp / 'out' / 'x.onnx')]


@pytest.mark.parametrize('name, argv, expected', [
    ('convert', _failing_convert, 'bad.pth: cannot read it as a PyTorch checkpoint'),
    ('publish', _failing_publish, "config.json: architecture 'resnet18' is not a timm-gcp model"),
    ('export-onnx', _failing_export, 'other.pth: Error(s) in loading state_dict'),
])
def test_a_failure_exits_1_with_one_line(name, argv, expected, tmp_path, capsys):
    assert cli.main([name, *argv(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f'timm-gcp {name}: error: ') and expected in captured.err
    assert 'Traceback' not in captured.err and not (tmp_path / 'out').exists()


def test_a_failed_release_tag_exits_1_and_says_why_in_its_row(tmp_path, capsys):
    name = 'ms_resnet18_isqrt.tpami_in1k'
    (tmp_path / f'{name}.ckpt').write_bytes(b'not a checkpoint')
    assert cli.main(['release', str(tmp_path), '--org', 'someone', '--dry-run', '--out', str(tmp_path / 'out')]) == 1
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(f'| {name} |'))
    assert '| failed |' in row and 'not a checkpoint' in row and not (tmp_path / 'out' / name).exists()


# arguments each command's parser requires
_ARGV = {'convert': ['x.pth'], 'publish': ['x', '--repo-id', 'a/b'], 'release': ['x', '--org', 'a'],
         'export-onnx': ['m', '--out', 'x.onnx'], 'launch': ['train.py']}


@pytest.mark.parametrize('name', list(cli.SUBCOMMANDS))
def test_main_reports_every_command_alike(name, monkeypatch, capsys):
    """cli.main alone formats what a command raises: UsageError 2, CommandError 1, anything else propagates."""
    module = importlib.import_module(cli.SUBCOMMANDS[name][0])
    argv = _ARGV.get(name, [])
    for error, status in ((_errors.UsageError('bad input'), 2), (_errors.CommandError('it broke'), 1)):
        def fail(args, error=error):
            raise error
        monkeypatch.setattr(module, 'run', fail)
        assert cli.main([name, *argv]) == status
        assert capsys.readouterr().err == f'timm-gcp {name}: error: {error}\n'
    monkeypatch.setattr(module, 'run', lambda args: {}['a bug'])
    with pytest.raises(KeyError):
        cli.main([name, *argv])


@pytest.mark.parametrize('name', list(cli.SUBCOMMANDS))
def test_ctrl_c_is_one_line_and_exit_130(name, monkeypatch, capsys):
    """Ctrl-C in any command: `timm-gcp NAME: interrupted` and 130, as a shell reports SIGINT; no traceback."""
    module = importlib.import_module(cli.SUBCOMMANDS[name][0])

    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, 'run', interrupt)
    argv = _ARGV.get(name, [])
    assert main_interrupted([name, *argv]) == 130
    assert capsys.readouterr().err == f'timm-gcp {name}: interrupted\n'


@pytest.mark.slow  # a Python subprocess importing timm: seconds on a small CPU
def test_bench_process_reports_a_usage_mistake_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'timm_gcp.cli', 'bench', '--models', 'gcp_isqrt'],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ''
    assert proc.stderr.startswith('timm-gcp bench: error: gcp_isqrt: gcp_isqrt needs backbone=')
    assert proc.stderr.count('\n') == 1


# --- optional dependencies (the [demo] extra) ---------------------------------------------------------------

def test_require_names_the_extra(monkeypatch):
    assert _extras.require('json', 'demo') is sys.modules['json']
    monkeypatch.setitem(sys.modules, 'tqdm', None)  # as if not installed
    with pytest.raises(_extras.MissingExtraError) as err:
        _extras.require('tqdm', 'demo')
    assert isinstance(err.value, ImportError) and isinstance(err.value.__cause__, ImportError)
    assert str(err.value) == 'tqdm is not installed; it comes with the [demo] extra: pip install "timm-gcp[demo]"'


def test_demo_without_matplotlib_names_the_extra_before_any_work(tmp_path, monkeypatch, capsys):
    """Exit status 2 and `pip install "timm-gcp[demo]"` before any data is read or any model trained."""
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    monkeypatch.setitem(sys.modules, 'matplotlib.figure', None)

    def never(*args, **kwargs):
        raise AssertionError('the demo went on without matplotlib')

    for name in ('find_fashion_mnist', 'load_fashion_mnist', 'analyze_seed', 'build_models'):
        monkeypatch.setattr(side_by_side, name, never)
    out_dir = tmp_path / 'demo'
    assert cli.main(['demo', '--data-dir', str(tmp_path / 'no-data'), '--out-dir', str(out_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith('timm-gcp demo: error: matplotlib is not installed')
    assert 'pip install "timm-gcp[demo]"' in captured.err and 'Traceback' not in captured.err
    assert captured.out == '' and not out_dir.exists()


def test_analyze_without_matplotlib_names_the_extra_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    monkeypatch.setitem(sys.modules, 'matplotlib.figure', None)
    from timm_gcp.analysis import run

    def never(*args, **kwargs):
        raise AssertionError('the analysis went on without matplotlib')

    for name in ('prepare', 'analyze_seed'):
        monkeypatch.setattr(run, name, never)
    assert cli.main(['analyze', '--data-dir', str(tmp_path), '--out-dir', str(tmp_path / 'out')]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith('timm-gcp analyze: error: matplotlib is not installed')
    assert captured.out == '' and not (tmp_path / 'out').exists()


# --- timm-gcp cards -----------------------------------------------------------------------------------------

def test_cards_check_passes_on_the_repository(capsys):
    """The committed cards and README model table are what the registry renders (README.md may be mid-edit)."""
    rc = cli.main(['cards', '--check', '--cards', str(REPO / 'model_cards'), '--readme', str(REPO / 'README.md')])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert 'out of date' not in out


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the repository's README.md, docs/checkpoints.md and model_cards/."""
    shutil.copytree(REPO / 'model_cards', tmp_path / 'model_cards')
    shutil.copy(REPO / 'README.md', tmp_path / 'README.md')
    (tmp_path / 'docs').mkdir()
    shutil.copy(REPO / 'docs' / 'checkpoints.md', tmp_path / 'docs' / 'checkpoints.md')
    return tmp_path


def test_cards_check_reports_drift_and_writing_fixes_it(checkout, capsys):
    cards, readme = checkout / 'model_cards', checkout / 'README.md'
    (cards / 'resnet50_isqrt.gcp_in1k.md').unlink()
    (cards / 'ms_resnet18_isqrt.tpami_in1k.md').write_text('stale\n')
    (cards / 'resnet50_isqrt.tpami_in1k.md').write_text('a card of a name that is no longer published\n')
    weights = checkout / 'docs' / 'checkpoints.md'
    for page, (start, end) in ((readme, (TABLE_START, TABLE_END)), (weights, (WEIGHTS_START, WEIGHTS_END))):
        text = page.read_text()
        page.write_text(text[:text.index(start) + len(start)] + '\n| old table |\n' + text[text.index(end):])
    snapshot = {p.name: p.read_bytes() for p in (*cards.iterdir(), readme, weights)}
    args = ['cards', '--cards', str(cards), '--readme', str(readme)]

    assert cli.main([*args, '--check']) == 1
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == sorted(f'out of date: {item}' for item in (
        'resnet50_isqrt.gcp_in1k.md', 'ms_resnet18_isqrt.tpami_in1k.md', 'resnet50_isqrt.tpami_in1k.md', str(readme),
        str(weights)))
    assert {p.name: p.read_bytes() for p in (*cards.iterdir(), readme, weights)} == snapshot  # --check writes nothing

    assert cli.main(args) == 0
    assert 'updated: resnet50_isqrt.gcp_in1k.md' in capsys.readouterr().out
    assert not (cards / 'resnet50_isqrt.tpami_in1k.md').exists()
    for name in ('resnet50_isqrt.gcp_in1k.md', 'ms_resnet18_isqrt.tpami_in1k.md'):
        assert (cards / name).read_bytes() == (REPO / 'model_cards' / name).read_bytes()
    assert readme.read_text() == (REPO / 'README.md').read_text()
    assert weights.read_text() == (REPO / 'docs' / 'checkpoints.md').read_text()
    assert cli.main([*args, '--check']) == 0


def test_cards_default_to_the_working_directory(checkout, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(checkout)
    assert cli.main(['cards', '--check']) == 0
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(['cards', '--check']) == 2
    err = capsys.readouterr().err
    assert err.startswith('timm-gcp cards: error: README.md: no such file') and '--readme' in err
    assert not (elsewhere / 'model_cards').exists()


def test_cards_with_a_missing_readme(tmp_path, capsys):
    missing = tmp_path / 'docs' / 'README.md'
    assert cli.main(['cards', '--cards', str(tmp_path / 'cards'), '--readme', str(missing)]) == 2
    assert f'timm-gcp cards: error: {missing}: no such file' in capsys.readouterr().err
    assert not (tmp_path / 'cards').exists()  # nothing written


def test_cards_with_a_readme_without_the_table_markers(tmp_path, capsys):
    readme = tmp_path / 'README.md'
    readme.write_text('# a README without the model table\n')
    assert cli.main(['cards', '--cards', str(tmp_path / 'cards'), '--readme', str(readme)]) == 2
    assert f'timm-gcp cards: error: {readme}: no <!-- model-table -->' in capsys.readouterr().err
    assert not (tmp_path / 'cards').exists()  # nothing written


def test_cards_with_a_weights_page_without_the_table_markers(checkout, capsys):
    weights = checkout / 'docs' / 'checkpoints.md'
    weights.write_text('# checkpoints without the weights table\n')
    (checkout / 'model_cards' / 'resnet50_isqrt.gcp_in1k.md').unlink()
    assert cli.main(['cards', '--cards', str(checkout / 'model_cards'), '--readme', str(checkout / 'README.md')]) == 2
    assert f'timm-gcp cards: error: {weights}: no <!-- weights-table -->' in capsys.readouterr().err
    assert not (checkout / 'model_cards' / 'resnet50_isqrt.gcp_in1k.md').exists()  # nothing written


# --- timm-gcp launch: `python -m timm_gcp.launch` as a subcommand -------------------------------------------

def test_launch_subcommand_runs_the_script_as_python_m_launch_does(stub, data, tmp_path):
    records = {}
    for how, run in (('module', launch.main), ('command', lambda argv: cli.main(['launch', *argv]))):
        out = tmp_path / how
        out.mkdir()
        args = ['--model', 'ms_resnet18_isqrt', '--data-dir', str(data), '--out', str(out), '--exit-code', '3']
        try:
            rc = run([str(stub), *args])
        except SystemExit as e:
            rc = e.code
        assert rc == 3  # the script's own exit status
        records[how] = stub_record(out)
        assert records[how]['argv'] == [str(stub), *args] and records[how]['name'] == '__main__'
    assert {k: v for k, v in records['module'].items() if k != 'argv'} == {
        k: v for k, v in records['command'].items() if k != 'argv'}


def test_launch_subcommand_checks_and_reports_like_the_module(stub, data, tmp_path, capsys):
    assert _main(['launch', str(stub), '--model', 'resnet18_isqrtt', '--data-dir', str(data)]) == 2
    assert "--model 'resnet18_isqrtt': no such model" in capsys.readouterr().err
    assert _main(['launch', '--check-only', str(stub), '--data-dir', str(data), '--out', str(tmp_path)]) == 0
    assert not (tmp_path / 'rank.json').exists()
    assert _main(['launch', str(tmp_path / 'nowhere' / 'train.py')]) == 2
    assert 'not on PyPI' in capsys.readouterr().err


@pytest.mark.slow  # a Python subprocess importing timm: seconds on a small CPU
def test_launch_subcommand_process_keeps_exit_code_and_traceback(stub, data, tmp_path):
    cmd = [sys.executable, '-m', 'timm_gcp.cli', 'launch', str(stub), '--data-dir', str(data), '--fail']
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1
    assert 'Traceback' in proc.stderr and 'RuntimeError: stub failure as asked' in proc.stderr
