"""The launcher (`python -m timm_gcp.launch SCRIPT ARGS`), the train_scripts/ wrappers, and timm's real scripts.

A stub script with timm's structure (module-level `config_parser` and `parser`, work under a main
guard) stands in for train.py where timm's scripts are not needed. Tests that run timm's real
train.py / validate.py need a folder holding them in TIMM_SCRIPTS_DIR and skip without it.
"""
import argparse
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest
import timm
import torch
import yaml

from timm_gcp import launch

from tests.helpers import REPO
from tests.helpers.images import write_image_folder, write_images
from tests.helpers.scripts import stub_record
from tests.helpers.timm_sources import SCRIPTS_DIR, needs_scripts

TRAIN_SH = REPO / 'train_scripts' / 'train.sh'
VALIDATE_SH = REPO / 'train_scripts' / 'validate.sh'


def _run_main(argv: List[str]) -> Optional[int]:
    """launch.main in this process; the script's sys.exit code, or main's return value."""
    try:
        return launch.main(argv)
    except SystemExit as e:
        return e.code


def _write_yaml(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_runs_script_as_main_with_its_own_argv(stub, data, tmp_path):
    args = ['--model', 'resnet18_isqrt', '--data-dir', str(data), '--epochs', '2', '--out', str(tmp_path)]
    argv_before, path0_before = list(sys.argv), sys.path[0]
    assert _run_main([str(stub), *args]) == 0
    record = stub_record(tmp_path)
    assert record['name'] == '__main__'
    assert record['argv'] == [str(stub), *args]
    assert record['registered'] and record['model'] == 'resnet18_isqrt' and record['epochs'] == 2
    assert record['path0'] == str(stub.parent)  # as `python train.py` sets it
    assert sys.argv == argv_before and sys.path[0] == path0_before


def test_exit_code_is_the_scripts(stub, data, tmp_path):
    assert _run_main([str(stub), '--data-dir', str(data), '--out', str(tmp_path), '--exit-code', '3']) == 3


def test_script_exception_propagates_untouched(stub, data):
    with pytest.raises(RuntimeError, match='stub failure as asked'):
        launch.main([str(stub), '--data-dir', str(data), '--fail'])


def test_missing_script_is_a_one_line_error(tmp_path, capsys):
    assert _run_main([str(tmp_path / 'nowhere' / 'train.py'), '--model', 'resnet18_isqrt']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'nowhere/train.py' in err and 'not on PyPI' in err and 'pytorch-image-models' in err


@pytest.mark.parametrize('cfg, expected', [
    ({'model': 'resnet18_isqrt', 'lr_sched': 'step'}, ["unknown key 'lr_sched'"]),
    ({'epochs': 2, 'weight-decay': 1e-4, 'modle': 'x'}, ["unknown keys", "'modle' (did you mean 'model'?)",
                                                          "'weight-decay'"]),
])
def test_unknown_config_key_is_named_before_the_script_runs(stub, data, tmp_path, capsys, cfg, expected):
    config = _write_yaml(tmp_path / 'recipe.yaml', cfg)
    assert _run_main([str(stub), '--config', str(config), '--data-dir', str(data), '--out', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert all(e in err for e in expected) and str(config) in err
    assert not (tmp_path / 'rank.json').exists()


def test_known_config_keys_and_dist_backend_pass(stub, data, tmp_path):
    config = _write_yaml(tmp_path / 'recipe.yaml', {'model': 'resnet18_dropcov', 'epochs': 4, 'dist_backend': 'gloo'})
    assert _run_main([str(stub), '-c', str(config), '--data-dir', str(data), '--out', str(tmp_path)]) == 0
    assert stub_record(tmp_path)['model'] == 'resnet18_dropcov' and stub_record(tmp_path)['epochs'] == 4


@pytest.mark.parametrize('model, expected', [
    ('resnet18_isqrtt', "--model 'resnet18_isqrtt': no such model"),
    ('resnet18_isqrt.no_such_tag', "has no pretrained tag 'no_such_tag'"),
    ('resnet18_isqrt.in1k', "has no pretrained tag 'in1k'"),
])
def test_unregistered_model_is_named(stub, data, tmp_path, capsys, model, expected):
    assert _run_main([str(stub), '--model', model, '--data-dir', str(data), '--out', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert 'resnet18_isqrt' in err  # a close match is offered
    assert not (tmp_path / 'rank.json').exists()


@pytest.mark.parametrize('model', ['ms_resnet18_isqrt.tpami_in1k', 'ms_resnet50_dropcov', 'resnet18_isqrt.tpami_in1k',
                                   'resnet50_dropcov.tpami_in1k', 'resnet50_isqrt.gcp_in1k'])
def test_registered_and_deprecated_names_pass_the_model_check(stub, data, tmp_path, model):
    """The names before the ms_ architectures (`<arch>.tpami_in1k`) still load in timm: the launcher lets them pass."""
    launch.check_model(model)
    assert _run_main([str(stub), '--model', model, '--data-dir', str(data), '--out', str(tmp_path)]) == 0
    assert stub_record(tmp_path)['model'] == model


def test_a_tag_of_another_architecture_is_refused():
    """Only the six deprecated names are let through, not tpami_in1k on any architecture."""
    with pytest.raises(launch.LaunchError, match="resnet101_isqrt has no pretrained tag 'tpami_in1k'"):
        launch.check_model('resnet101_isqrt.tpami_in1k')
    with pytest.raises(launch.LaunchError, match="ms_resnet18_isqrt has no pretrained tag 'dc_in1k'"):
        launch.check_model('ms_resnet18_isqrt.dc_in1k')


def test_model_from_config_is_checked(stub, data, tmp_path, capsys):
    config = _write_yaml(tmp_path / 'recipe.yaml', {'model': 'resnet50_gcp'})
    assert _run_main([str(stub), '-c', str(config), '--data-dir', str(data)]) == 2
    assert "'resnet50_gcp'" in capsys.readouterr().err


def test_data_folder_problems_are_named(stub, tmp_path, capsys):
    missing = tmp_path / 'missing'
    assert _run_main([str(stub), '--model', 'resnet18_isqrt', '--data-dir', str(missing)]) == 2
    assert f"data folder '{missing}' does not exist" in capsys.readouterr().err

    empty = tmp_path / 'empty'
    (empty / 'train' / 'a').mkdir(parents=True)
    (empty / 'train' / 'a' / 'notes.txt').write_text('not an image')
    assert _run_main([str(stub), '--model', 'resnet18_isqrt', '--data-dir', str(empty)]) == 2
    err = capsys.readouterr().err
    assert f"data folder '{empty}' holds no images for the 'train' split" in err

    no_val = tmp_path / 'no_val'
    write_images(no_val / 'train' / 'a')
    (no_val / 'validation').mkdir()
    assert _run_main([str(stub), '--model', 'resnet18_isqrt', '--data-dir', str(no_val)]) == 2
    assert "for the 'validation' split" in capsys.readouterr().err

    # the deprecated positional data folder is checked too; other readers are left alone
    assert _run_main([str(stub), str(missing)]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert _run_main([str(stub), '--dataset', 'torch/cifar10', '--data-dir', str(missing),
                      '--out', str(tmp_path)]) == 0


def test_check_only_and_no_check(stub, data, tmp_path):
    assert _run_main(['--check-only', str(stub), '--data-dir', str(data), '--out', str(tmp_path)]) == 0
    assert not (tmp_path / 'rank.json').exists()
    assert _run_main(['--no-check', str(stub), '--model', 'not_a_model', '--data-dir', str(data),
                      '--out', str(tmp_path)]) == 0
    assert stub_record(tmp_path)['model'] == 'not_a_model'


@pytest.mark.parametrize('where', ['before', 'after'])
def test_launcher_flags_are_taken_anywhere_and_never_reach_the_script(where, stub, data, tmp_path, capsys):
    args = [str(stub), '--model', 'resnet18_isqrt', '--data-dir', str(data), '--out', str(tmp_path)]
    for flag in ('--check-only', '--no-check'):
        argv = [flag, *args] if where == 'before' else [*args, flag]
        assert _run_main(argv) == 0
    assert stub_record(tmp_path)['argv'] == args  # the --no-check run, without the flag
    assert capsys.readouterr().out == (
        f'train.py: checked model resnet18_isqrt, built and run on 3x224x224 inputs on the meta device; '
        f'data folder {data} (train, validation): ok\n')


def test_check_only_and_no_check_exclude_each_other(stub, data, capsys):
    assert _run_main(['--check-only', str(stub), '--data-dir', str(data), '--no-check']) == 2
    assert capsys.readouterr().err == ('timm-gcp launch: error: --check-only and --no-check exclude each other: '
                                       'pass one of them\n')


def test_a_generic_model_without_its_backbone_is_named(stub, data, capsys):
    assert _run_main([str(stub), '--model', 'gcp_isqrt', '--data-dir', str(data)]) == 2
    assert capsys.readouterr().err == (
        'timm-gcp launch: error: --model gcp_isqrt needs backbone=<timm model name>: pass it with --model-kwargs '
        'backbone=NAME, or name a preset that has its backbone, e.g. convnext_tiny_isqrt, convnext_tiny_dropcov\n')


def test_help_goes_to_the_script(stub, capsys):
    assert _run_main([str(stub), '--help']) == 0
    assert '--exit-code' in capsys.readouterr().out


def test_fallback_without_a_module_level_parser(tmp_path, data, capsys):
    """A train.py whose parser cannot be read is checked against TRAIN_ARGS and its command line."""
    script = tmp_path / 'train.py'
    script.write_text('import sys\nprint("ran", sys.argv[1:])\n')  # no main guard: never executed twice
    good = _write_yaml(tmp_path / 'good.yaml', {'model': 'resnet18_isqrt', 'weight_decay': 1e-4, 'opt_kwargs': {}})
    bad = _write_yaml(tmp_path / 'bad.yaml', {'weight_decay': 1e-4, 'weigth_decay': 1e-4})
    assert _run_main([str(script), '--config', str(good), '--data-dir', str(data)]) == 0
    assert capsys.readouterr().out.count('ran') == 1
    assert _run_main([str(script), '--config', str(bad), '--data-dir', str(data)]) == 2
    assert "'weigth_decay' (did you mean 'weight_decay'?)" in capsys.readouterr().err
    assert _run_main([str(script), '--model', 'nope_net', '--data-dir', str(data)]) == 2
    assert "'nope_net'" in capsys.readouterr().err
    assert _run_main([str(script), '--data-dir', str(tmp_path / 'missing')]) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_config_file_problems_are_named(stub, data, tmp_path, capsys):
    assert _run_main([str(stub), '-c', str(tmp_path / 'none.yaml'), '--data-dir', str(data)]) == 2
    assert 'none.yaml' in capsys.readouterr().err
    listing = tmp_path / 'list.yaml'
    listing.write_text('- model\n- epochs\n')
    assert _run_main([str(stub), '-c', str(listing), '--data-dir', str(data)]) == 2
    assert 'must hold a mapping' in capsys.readouterr().err


def _env(**extra: str) -> dict:
    """This process's environment without TIMM_SCRIPTS_DIR, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != 'TIMM_SCRIPTS_DIR'}
    env.update(PYTHONUNBUFFERED='1', **extra)
    return env


@pytest.mark.slow  # a Python subprocess importing timm: seconds on a small CPU
def test_python_m_launch_process_keeps_exit_code_and_traceback(stub, data, tmp_path):
    cmd = [sys.executable, '-m', 'timm_gcp.launch', str(stub), '--data-dir', str(data), '--fail']
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=300)
    assert proc.returncode == 1
    assert 'Traceback' in proc.stderr and str(stub) in proc.stderr
    assert 'RuntimeError: stub failure as asked' in proc.stderr


@pytest.mark.parametrize('wrapper', [TRAIN_SH, VALIDATE_SH])
def test_wrappers_need_timm_scripts_dir(wrapper, tmp_path):
    proc = subprocess.run(['bash', str(wrapper), '1', 'resnet18_isqrt', str(tmp_path)], capture_output=True,
                          text=True, env=_env())
    assert proc.returncode == 2
    assert 'TIMM_SCRIPTS_DIR is not set' in proc.stderr and 'pytorch-image-models' in proc.stderr
    usage = subprocess.run(['bash', str(wrapper), '1'], capture_output=True, text=True, env=_env())
    assert usage.returncode == 2 and 'usage:' in usage.stderr


@pytest.mark.slow  # a Python subprocess importing timm: seconds on a small CPU
def test_train_sh_checks_then_runs_torchrun_with_the_launcher(stub, data, tmp_path):
    """train.sh with a stub train.py: torchrun runs the launcher in every rank, with the config, data folder
    and extra arguments; a bad config stops it before torchrun starts."""
    config = _write_yaml(tmp_path / 'recipe.yaml', {'model': 'resnet18_isqrt', 'epochs': 5})
    env = _env(TIMM_SCRIPTS_DIR=str(stub.parent), PYTHON=sys.executable)
    proc = subprocess.run(['bash', str(TRAIN_SH), '2', str(config), str(data), '--epochs', '7', '--out', str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in ('0', '1'):
        record = stub_record(tmp_path, rank)
        assert record['name'] == '__main__' and record['registered'] and record['world_size'] == '2'
        assert record['argv'][1:] == ['--config', str(config), '--data-dir', str(data), '--epochs', '7',
                                      '--out', str(tmp_path)]
        assert record['model'] == 'resnet18_isqrt' and record['epochs'] == 7

    bad = _write_yaml(tmp_path / 'bad.yaml', {'model': 'resnet18_isqrt', 'lr_schedule': 'step'})
    for record in tmp_path.glob('rank*.json'):
        record.unlink()
    proc = subprocess.run(['bash', str(TRAIN_SH), '2', str(bad), str(data), '--out', str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 2 and "unknown key 'lr_schedule'" in proc.stderr
    assert 'torch.distributed' not in proc.stderr and not list(tmp_path.glob('rank*.json'))


@pytest.mark.slow  # a Python subprocess importing timm: seconds on a small CPU
def test_validate_sh_takes_the_model_from_a_recipe(tmp_path, data):
    scripts = tmp_path / 'scripts'
    scripts.mkdir()
    (scripts / 'validate.py').write_text('import json, sys\nprint(json.dumps(sys.argv[1:]))\n')
    recipe = REPO / 'train_scripts' / 'resnet50_dropcov.dc_in1k.yaml'
    env = _env(TIMM_SCRIPTS_DIR=str(scripts), PYTHON=sys.executable)
    proc = subprocess.run(['bash', str(VALIDATE_SH), '2', str(recipe), str(data), '--checkpoint', 'x.pth.tar'],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == [
        '--model', 'resnet50_dropcov', '--data-dir', str(data), '--num-gpu', '2', '--checkpoint', 'x.pth.tar']
    no_model = _write_yaml(tmp_path / 'no_model.yaml', {'epochs': 3})
    proc = subprocess.run(['bash', str(VALIDATE_SH), '1', str(no_model), str(data)], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 2 and f"config file '{no_model}' names no model" in proc.stderr


# timm's real scripts: TIMM_SCRIPTS_DIR must hold train.py and validate.py (copied out of a clone of
# pytorch-image-models, or the clone itself: the launcher imports the installed timm first)

TINY = ['--model-kwargs', 'gcp_dim=16', '--num-classes', '2', '--img-size', '32', '--device', 'cpu',
        '--workers', '0']


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp('imagefolder'), per_class=8)


def _run(cmd: List[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=_env(**env), timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


def _top1(output: str) -> float:
    """top1 from validate.py's JSON result printed at the end of its output."""
    return json.loads(output[output.index('--result') + len('--result'):])['top1']


@pytest.mark.slow
@needs_scripts
def test_real_train_and_validate_via_launcher(image_folder, tmp_path):
    _run([sys.executable, '-m', 'timm_gcp.launch', os.path.join(SCRIPTS_DIR, 'train.py'),
          '--model', 'resnet18_isqrt', '--data-dir', str(image_folder), *TINY, '--batch-size', '8',
          '--epochs', '1', '--model-ema', '--no-prefetcher', '--output', str(tmp_path), '--experiment', 'run'],
         tmp_path)
    run = tmp_path / 'run'
    assert (run / 'last.pth.tar').is_file() and (run / 'summary.csv').is_file()
    proc = _run(['bash', str(VALIDATE_SH), '1', 'resnet18_isqrt', str(image_folder), *TINY,
                 '--checkpoint', str(run / 'last.pth.tar'), '--use-ema'], tmp_path,
                TIMM_SCRIPTS_DIR=SCRIPTS_DIR, PYTHON=sys.executable)
    assert 0.0 <= _top1(proc.stdout) <= 100.0


@pytest.mark.slow
@needs_scripts
def test_real_train_via_device_modules(image_folder, tmp_path):
    _run([sys.executable, os.path.join(SCRIPTS_DIR, 'train.py'), '--device-modules', 'timm_gcp',
          '--model', 'resnet18_dropcov', '--data-dir', str(image_folder), *TINY, '--batch-size', '8',
          '--epochs', '1', '--no-prefetcher', '--output', str(tmp_path), '--experiment', 'run'], tmp_path)
    assert (tmp_path / 'run' / 'last.pth.tar').is_file()


@pytest.mark.slow
@needs_scripts
def test_real_train_sh_with_a_recipe(image_folder, tmp_path):
    """A published recipe, shrunk from the command line, through train.sh (torchrun, 1 process on the CPU)."""
    recipe = REPO / 'train_scripts' / 'resnet18_isqrt_d256.gcp_in1k.yaml'
    proc = _run(['bash', str(TRAIN_SH), '1', str(recipe), str(image_folder), '--model', 'resnet18_isqrt', *TINY,
                 '--batch-size', '8', '--epochs', '1', '--no-prefetcher', '--output', str(tmp_path),
                 '--experiment', 'run'], tmp_path, TIMM_SCRIPTS_DIR=SCRIPTS_DIR, PYTHON=sys.executable)
    with open(tmp_path / 'run' / 'args.yaml') as f:
        args = yaml.safe_load(f)
    assert args['model'] == 'resnet18_isqrt' and args['opt'] == 'momentum' and args['weight_decay'] == 1e-4
    assert args['opt_kwargs'] == {'filter_bias_and_bn': False} and args['device_modules'] == ['timm_gcp']
    log = proc.stdout + proc.stderr
    assert f'Learning rate ({0.1 * 8 / 256})' in log  # lr_base scaled to the global batch of 8
    assert 'nesterov: False' in log and (tmp_path / 'run' / 'last.pth.tar').is_file()


@pytest.mark.slow
@needs_scripts
def test_real_train_rejects_an_unknown_recipe_key(image_folder, tmp_path):
    bad = _write_yaml(tmp_path / 'bad.yaml', {'model': 'resnet18_isqrt', 'warmup_epoch': 0})
    proc = subprocess.run([sys.executable, '-m', 'timm_gcp.launch', os.path.join(SCRIPTS_DIR, 'train.py'),
                           '--config', str(bad), '--data-dir', str(image_folder)],
                          capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=300)
    assert proc.returncode == 2
    assert "unknown key 'warmup_epoch' (did you mean 'warmup_epochs'?)" in proc.stderr



# checks against the parsers of timm's real scripts (--check-only: nothing runs)

def _check_only(capsys, script: str, *args: str) -> tuple:
    """launch.main --check-only on timm's `script`: exit code and the launcher's stderr."""
    code = _run_main(['--check-only', os.path.join(SCRIPTS_DIR, script), *args])
    return code, capsys.readouterr().err


@needs_scripts
@pytest.mark.parametrize('script, flag', [
    ('validate.py', '--checkpoint'), ('inference.py', '--checkpoint'), ('train.py', '--resume'),
    ('train.py', '--initial-checkpoint'),
])
def test_a_missing_checkpoint_is_named_before_the_script_runs(script, flag, data, tmp_path, capsys):
    args = ['--model', 'resnet18_isqrt', '--data-dir', str(data), '--device', 'cpu']
    missing = tmp_path / 'missing.pth.tar'
    assert _check_only(capsys, script, *args, flag, str(missing)) == (
        2, f"timm-gcp launch: error: {flag} '{missing}': no such file\n")
    assert _check_only(capsys, script, *args, flag, str(tmp_path))[1].endswith('is a folder, not a file\n')
    torch.save({'arch': 'resnet18_isqrt', 'state_dict': {}}, tmp_path / 'present.pth.tar')
    assert _check_only(capsys, script, *args, flag, str(tmp_path / 'present.pth.tar')) == (0, '')
    if flag != '--pretrained-path':  # weights that load into --model: the model they were trained as
        torch.save({'arch': 'resnet34_isqrt', 'state_dict': {}}, tmp_path / 'other.pth.tar')
        assert _check_only(capsys, script, *args, flag, str(tmp_path / 'other.pth.tar')) == (
            2, f"timm-gcp launch: error: {flag} {tmp_path / 'other.pth.tar'}: the checkpoint was trained as "
               f"resnet34_isqrt (its 'arch'); --model says resnet18_isqrt: give resnet34_isqrt\n")


@needs_scripts
@pytest.mark.parametrize('script', ['validate.py', 'inference.py'])
def test_test_pool_is_refused_for_gcp_models_only(script, data, capsys):
    args = ['--data-dir', str(data), '--device', 'cpu', '--test-pool']
    code, err = _check_only(capsys, script, '--model', 'resnet18_isqrt', *args)
    assert code == 2 and "--test-pool does not work with the GCP model 'resnet18_isqrt'" in err
    assert 'TestTimePoolHead' in err and 'leave --test-pool out' in err
    assert _check_only(capsys, script, '--model', 'resnet18', *args) == (0, '')


@needs_scripts
def test_a_flag_the_script_lacks_is_named_not_taken_for_the_data_folder(data, tmp_path, capsys):
    # inference.py has a positional data folder: '--output-dir OUT' used to be reported as a missing folder OUT
    code, err = _check_only(capsys, 'inference.py', '--model', 'resnet18_isqrt', '--data-dir', str(data),
                            '--device', 'cpu', '--output-dir', str(tmp_path / 'out'))
    assert code == 2
    assert err.startswith("timm-gcp launch: error: inference.py has no argument '--output-dir'")
    assert 'data folder' not in err


@needs_scripts
@pytest.mark.parametrize('script', ['train.py', 'validate.py', 'inference.py', 'benchmark.py'])
def test_cuda_default_without_cuda_says_pass_device_cpu(script, data, capsys, monkeypatch):
    monkeypatch.setattr(launch.torch.cuda, 'is_available', lambda: False)
    args = ['--model', 'resnet18_isqrt'] + ([] if script == 'benchmark.py' else ['--data-dir', str(data)])
    assert _check_only(capsys, script, *args) == (
        2, "timm-gcp launch: error: --device is 'cuda' (the script's default), but CUDA is not available here: "
           "pass --device cpu\n")
    code, err = _check_only(capsys, script, *args, '--device', 'cuda:1')
    assert code == 2 and "--device is 'cuda:1', but CUDA" in err
    assert _check_only(capsys, script, *args, '--device', 'cpu') == (0, '')


@pytest.mark.slow
@needs_scripts
def test_real_inference_and_benchmark_via_launcher(image_folder, tmp_path):
    """timm's inference.py (which writes with pandas: the [scripts] extra) and benchmark.py on a GCP model."""
    checkpoint = tmp_path / 'weights.pth'  # inference.py loads pretrained weights unless given a checkpoint
    torch.save(timm.create_model('resnet18_isqrt', num_classes=2, gcp_dim=16).state_dict(), checkpoint)
    proc = _run([sys.executable, '-m', 'timm_gcp.launch', os.path.join(SCRIPTS_DIR, 'inference.py'),
                 '--model', 'resnet18_isqrt', '--data-dir', str(image_folder / 'validation'), *TINY,
                 '--checkpoint', str(checkpoint),
                 '--batch-size', '8', '--topk', '2', '--results-dir', str(tmp_path), '--results-format', 'csv',
                 '--no-console-results'], tmp_path)
    rows = (tmp_path / 'resnet18_isqrt-32.csv').read_text().strip().splitlines()  # <model>-<img size>.csv
    assert rows[0].startswith('filename,') and len(rows) == 1 + 16, proc.stdout[-2000:]  # a row per image
    proc = _run([sys.executable, '-m', 'timm_gcp.launch', os.path.join(SCRIPTS_DIR, 'benchmark.py'),
                 '--model', 'resnet18_isqrt', '--bench', 'both', '--device', 'cpu', '--batch-size', '2',
                 '--img-size', '32', '--num-classes', '2', '--model-kwargs', 'gcp_dim=16', '--num-warm-iter', '1',
                 '--num-bench-iter', '5', '--results-file', str(tmp_path / 'bench.csv')], tmp_path)
    (result,) = csv.DictReader((tmp_path / 'bench.csv').read_text().splitlines())
    assert result['model'] == 'resnet18_isqrt' and result['param_count'] == '11.19'
    assert float(result['infer_samples_per_sec']) > 0 and float(result['train_samples_per_sec']) > 0


@needs_scripts
@pytest.mark.parametrize('script', ['train.py', 'validate.py'])
@pytest.mark.parametrize('args, expected', [
    (['--model', 'gcp_isqrt', '--model-kwargs', 'backbone=resnet_nope'],
     "--model gcp_isqrt cannot be built with the given arguments (gcp_isqrt with backbone='resnet_nope'): unknown "
     "timm backbone 'resnet_nope'"),
    (['--model', 'resnet18_isqrt', '--model-kwargs', 'gcp_dim=x'],
     "--model resnet18_isqrt cannot be built with the given arguments (resnet18_isqrt with gcp_dim='x'): "),
    (['--model', 'vit_tiny_patch16_224', '--img-size', '64'],
     "--model vit_tiny_patch16_224 cannot take 3x64x64 inputs: Input height (64) doesn't match model (224). "
     "(vit_tiny_patch16_224 is built for 224x224 inputs only: pass --model-kwargs img_size=64)"),
    (['--model', 'resnet18_isqrt', '--img-size', '16'],
     '--model resnet18_isqrt cannot take 3x16x16 inputs: GCP pooling got a 1x1 feature map'),
])
def test_the_model_is_built_with_the_scripts_arguments_on_the_meta_device(script, args, expected, data, capsys):
    code, err = _check_only(capsys, script, *args, '--data-dir', str(data), '--device', 'cpu')
    assert code == 2 and err.startswith(f'timm-gcp launch: error: {expected}')


@needs_scripts
def test_check_only_says_what_it_checked(data, capsys):
    args = ['--model', 'gcp_isqrt', '--model-kwargs', 'backbone=resnet18', 'gcp_dim=16', '--num-classes', '2',
            '--img-size', '64', '--data-dir', str(data), '--device', 'cpu']
    assert _run_main([os.path.join(SCRIPTS_DIR, 'train.py'), *args, '--check-only']) == 0
    assert capsys.readouterr().out == (
        f"train.py: checked model gcp_isqrt with backbone='resnet18', gcp_dim=16, num_classes=2, built and run on "
        f"3x64x64 inputs on the meta device; device cpu; data folder {data} (train, validation): ok\n")


class _ItemNet(torch.nn.Module):
    """A model whose forward reads a value (`.item()`), which the meta device cannot give."""

    pretrained_cfg = dict(input_size=(3, 8, 8))

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3))) * x.abs().max().item()


def test_a_model_that_cannot_run_on_the_meta_device_is_not_refused(monkeypatch):
    def create_model(name, device=None, **kwargs):
        with torch.device(device):
            return _ItemNet()

    monkeypatch.setattr(launch.timm, 'create_model', create_model)
    ns = argparse.Namespace(model='resnet18', img_size=8)
    assert launch.check_model_build(ns) == (
        'model resnet18, built on the meta device (its input size unchecked: it does not run there)')


@pytest.mark.parametrize('name', ['resnet18_isqrt', 'hf-hub:someone/resnet18_isqrt'])
def test_a_none_model_kwarg_of_the_script_is_refused(name):
    """timm's ParseKwargs reads gcp_dim=None as None, which timm.create_model drops: the model would be the default."""
    ns = argparse.Namespace(model=name, model_kwargs={'gcp_dim': None}, img_size=64)
    with pytest.raises(launch.UsageError, match=r'^--model-kwargs gcp_dim=None: timm.create_model drops None '
                                                r'arguments, so gcp_dim would silently keep its default; for no '
                                                r'reduction pass gcp_dim=0$'):
        launch.check_model_build(ns)


@pytest.mark.parametrize('script, args, expected', [
    ('train.py', dict(img_size=0), "--img-size must be at least 1, got 0: the scripts read 0 as unset and use the "
                                   "model's own input size"),
    ('validate.py', dict(input_size=[3, 0, 0]), '--input-size must be at least 1, got [3, 0, 0]: the scripts read 0'),
    ('train.py', dict(img_size=-3), '--img-size must be at least 1, got -3$'),
    ('train.py', dict(batch_size=0), '--batch-size must be at least 1, got 0$'),
    ('validate.py', dict(batch_size=8, validation_batch_size=0), '--validation-batch-size must be at least 1, got 0$'),
    ('train.py', dict(epochs=0), '--epochs must be at least 1, got 0$'),
    ('train.py', dict(num_classes=0), '--num-classes 0 builds the model without a classifier, which train.py scores '
                                      'as if it were one: give the number of classes'),
    ('validate.py', dict(num_classes=0), '--num-classes 0 builds the model without a classifier, which validate.py'),
])
def test_a_size_or_count_below_1_is_named(script, args, expected):
    """train.py reads --img-size 0 as unset (a run at the model's 224 px) and trains nothing in 0 epochs."""
    with pytest.raises(launch.LaunchError, match='^' + expected.replace('[', r'\[').replace(']', r'\]')):
        launch.check_positive(argparse.Namespace(**args), script)


def test_benchmark_may_time_a_model_without_classifier():
    launch.check_positive(argparse.Namespace(num_classes=0, img_size=None, batch_size=8), 'benchmark.py')


def test_a_local_dir_model_without_config_is_named(tmp_path):
    with pytest.raises(launch.LaunchError, match=r"^--model 'local-dir:.*': no config.json in '.*' \(a local-dir: "
                                                 r"model is a folder written by `timm-gcp convert`"):
        launch.check_model(f'local-dir:{tmp_path}')
    (tmp_path / 'config.json').write_text('{}')
    launch.check_model(f'local-dir:{tmp_path}')


@pytest.mark.parametrize('device, expected', [
    ('mps', "--device is 'mps', but MPS is not available here: pass --device cpu"),
    ('cuda:3', "--device is 'cuda:3' (the script's default), but CUDA is not available here: pass --device cpu"),
])
def test_a_device_that_is_not_here_is_named(device, expected, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.mps, 'is_available', lambda: False)
    given = ['--device', device] if device == 'mps' else []
    with pytest.raises(launch.LaunchError, match=f'^{re.escape(expected)}$'):
        launch.check_device(argparse.Namespace(device=device), argparse.ArgumentParser(), given, {})
    launch.check_device(argparse.Namespace(device='cpu'), argparse.ArgumentParser(), [], {})


def test_a_checkpoint_of_another_model_is_named(tmp_path):
    """validate.py would load the weights into --model and fail with a state-dict traceback."""
    torch.save({'arch': 'resnet18_isqrt', 'state_dict': {}}, tmp_path / 'model_best.pth.tar')
    launch.check_files(argparse.Namespace(model='resnet18_isqrt', checkpoint=str(tmp_path / 'model_best.pth.tar')))
    with pytest.raises(launch.LaunchError, match=r"^--checkpoint .*model_best.pth.tar: the checkpoint was trained as "
                                                 r"resnet18_isqrt \(its 'arch'\); --model says resnet34_isqrt: give "
                                                 r"resnet18_isqrt$"):
        launch.check_files(argparse.Namespace(model='resnet34_isqrt', checkpoint=str(tmp_path / 'model_best.pth.tar')))
    with pytest.raises(launch.LaunchError, match=r"^--resume '.*': is a folder, not a file: give the file, e\.g\. "
                                                 r".*model_best\.pth\.tar \(it holds model_best\.pth\.tar\)$"):
        launch.check_files(argparse.Namespace(model='resnet18_isqrt', resume=str(tmp_path)))
