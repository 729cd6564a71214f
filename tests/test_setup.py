"""tools/setup.sh on a fresh machine: the PEP 668 check that sends it to a project venv, and tools/run.sh.

Nothing is installed: the functions of setup.sh are sourced (its main runs only when executed) and
called on their own, against a fake stdlib folder holding the EXTERNALLY-MANAGED marker, with the
base interpreter (outside any venv): pytest itself may run in the .venv/ that setup.sh made.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import pytest

from tests.helpers import REPO

SETUP = REPO / 'tools' / 'setup.sh'


def _bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', '-c', f'source {SETUP}; {script}'], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=300)


def base_python() -> str:
    """An interpreter outside any venv: this one, or the one its venv was made from (as in tools/setup.sh's .venv/)."""
    if sys.prefix == sys.base_prefix:
        return sys.executable
    python = Path(sys.base_prefix) / 'bin' / f'python{sys.version_info.major}.{sys.version_info.minor}'
    assert python.is_file(), f'{python}: the base interpreter of this venv is not there'
    return str(python)


def _stdlib_folders(tmp_path: Path) -> Tuple[Path, Path]:
    """A stdlib folder holding the EXTERNALLY-MANAGED marker, and one without it."""
    managed, plain = tmp_path / 'managed', tmp_path / 'plain'
    managed.mkdir()
    plain.mkdir()
    (managed / 'EXTERNALLY-MANAGED').write_text('[externally-managed]\nError=use a venv\n')
    return managed, plain


@pytest.fixture(scope='module')
def venv_python(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('venv') / 'venv'
    subprocess.run([base_python(), '-m', 'venv', '--without-pip', str(folder)], check=True, timeout=120)
    return folder / 'bin' / 'python'


def test_externally_managed_is_the_marker_in_the_stdlib_outside_a_venv(tmp_path, venv_python):
    managed, plain = _stdlib_folders(tmp_path)
    base = base_python()
    assert _bash(f'externally_managed {base} {managed}', tmp_path).returncode == 0
    assert _bash(f'externally_managed {base} {plain}', tmp_path).returncode == 1
    # a venv's interpreter shares the base stdlib, marker included, but pip installs into it
    assert _bash(f'externally_managed {venv_python} {managed}', tmp_path).returncode == 1
    # without a folder: the interpreter's own stdlib (Debian 12's /usr/bin/python3 has the marker)
    stdlib = _bash(f'stdlib_of {base}', tmp_path).stdout.strip()
    expected = 0 if (Path(stdlib) / 'EXTERNALLY-MANAGED').is_file() else 1
    assert _bash(f'externally_managed {base}', tmp_path).returncode == expected
    assert _bash(f'externally_managed {venv_python}', tmp_path).returncode == 1


@pytest.mark.slow  # a venv with pip: seconds to half a minute on a small CPU
def test_setup_python_makes_and_reuses_a_venv_only_for_a_managed_interpreter(tmp_path):
    # the first `python` on PATH: the base interpreter (outside any venv), whatever runs this test
    bin_dir, project = tmp_path / 'bin', tmp_path / 'project'
    bin_dir.mkdir()
    project.mkdir()
    (bin_dir / 'python').write_text(f'#!/bin/sh\nexec {base_python()} "$@"\n')
    (bin_dir / 'python').chmod(0o755)
    path = f'{bin_dir}:{os.environ["PATH"]}'
    managed, plain = _stdlib_folders(tmp_path)
    # setup.sh's own check, against a stdlib without the marker: installs into the interpreter on PATH
    proc = _bash(f'stdlib_of() {{ echo {plain}; }}; setup_python', project, PATH=path)
    assert proc.returncode == 0 and proc.stdout.strip() == str(bin_dir / 'python'), proc.stderr
    assert not (project / '.venv').exists()
    # as on Debian 12 / Ubuntu 24.04: the marker is there, so a project venv
    proc = _bash(f'stdlib_of() {{ echo {managed}; }}; setup_python', project, PATH=path)
    assert proc.returncode == 0, proc.stderr
    venv = project / '.venv' / 'bin' / 'python'
    assert proc.stdout.strip() == str(venv) and 'externally managed (PEP 668): installing into .venv/' in proc.stderr
    assert subprocess.run([str(venv), '-m', 'pip', '--version'], capture_output=True).returncode == 0
    # a second run reuses it
    (venv.parent / 'marker').write_text('')
    assert _bash(f'stdlib_of() {{ echo {managed}; }}; setup_python', project, PATH=path).stdout.strip() == str(venv)
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
