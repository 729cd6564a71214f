"""tools/setup.sh on a fresh machine: the PEP 668 check that sends it to a project venv, and tools/run.sh.

Nothing is installed: the functions of setup.sh are sourced (its main runs only when executed) and
called on their own, against a fake stdlib folder holding the EXTERNALLY-MANAGED marker.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SETUP = REPO / 'tools' / 'setup.sh'


def _bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', '-c', f'source {SETUP}; {script}'], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=300)


@pytest.fixture(scope='module')
def venv_python(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('venv') / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(folder)], check=True, timeout=120)
    return folder / 'bin' / 'python'


def test_externally_managed_is_the_marker_in_the_stdlib_outside_a_venv(tmp_path, venv_python):
    managed, plain = tmp_path / 'managed', tmp_path / 'plain'
    managed.mkdir()
    plain.mkdir()
    (managed / 'EXTERNALLY-MANAGED').write_text('[externally-managed]\nError=use a venv\n')
    assert _bash(f'externally_managed {sys.executable} {managed}', tmp_path).returncode == 0
    assert _bash(f'externally_managed {sys.executable} {plain}', tmp_path).returncode == 1
    # a venv's interpreter shares the base stdlib, marker included, but pip installs into it
    assert _bash(f'externally_managed {venv_python} {managed}', tmp_path).returncode == 1
    # without a folder: the interpreter's own stdlib
    stdlib = _bash(f'stdlib_of {sys.executable}', tmp_path).stdout.strip()
    in_venv = sys.prefix != sys.base_prefix
    expected = 0 if (Path(stdlib) / 'EXTERNALLY-MANAGED').is_file() and not in_venv else 1
    assert _bash(f'externally_managed {sys.executable}', tmp_path).returncode == expected


@pytest.mark.slow  # a venv with pip: seconds to half a minute on a small CPU
def test_setup_python_makes_and_reuses_a_venv_only_for_a_managed_interpreter(tmp_path):
    path = f'{Path(sys.executable).parent}:{os.environ["PATH"]}'
    proc = _bash('setup_python', tmp_path, PATH=path)
    assert proc.returncode == 0 and proc.stdout.strip() == shutil.which('python', path=path)
    assert not (tmp_path / '.venv').exists()
    # as on Debian 12 / Ubuntu 24.04: the interpreter on PATH is externally managed
    managed = 'externally_managed() { ! in_venv "$1"; }; '
    proc = _bash(managed + 'setup_python', tmp_path, PATH=path)
    assert proc.returncode == 0, proc.stderr
    venv = tmp_path / '.venv' / 'bin' / 'python'
    assert proc.stdout.strip() == str(venv) and 'externally managed (PEP 668): installing into .venv/' in proc.stderr
    assert subprocess.run([str(venv), '-m', 'pip', '--version'], capture_output=True).returncode == 0
    # a second run reuses it
    (venv.parent / 'marker').write_text('')
    assert _bash(managed + 'setup_python', tmp_path, PATH=path).stdout.strip() == str(venv)
    assert (venv.parent / 'marker').exists()


def test_run_sh_puts_the_venv_first_only_where_there_is_one(tmp_path):
    tools = tmp_path / 'tools'
    tools.mkdir()
    shutil.copy(REPO / 'tools' / 'run.sh', tools / 'run.sh')
    show = ['bash', str(tools / 'run.sh'), 'bash', '-c', 'echo "$PATH"']
    assert subprocess.run(show, capture_output=True, text=True).stdout.strip() == os.environ['PATH']
    (tmp_path / '.venv' / 'bin').mkdir(parents=True)
    python = tmp_path / '.venv' / 'bin' / 'python'
    python.write_text('#!/bin/sh\n')
    python.chmod(0o755)
    out = subprocess.run(show, capture_output=True, text=True).stdout.strip()
    assert out == f'{tmp_path / ".venv" / "bin"}:{os.environ["PATH"]}'
