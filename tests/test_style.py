"""The house style that a linter can check: ruff with pyproject.toml's rules (pyflakes, pycodestyle, 120 columns)."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    assert importlib.util.find_spec('ruff'), 'ruff is not installed: it comes with the [test] extra (tools/setup.sh)'
    return subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', *args], cwd=cwd,
                          capture_output=True, text=True)


def test_ruff_passes_on_the_package_tests_and_tools():
    proc = ruff('timm_gcp', 'tests', 'tools', cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.parametrize('line, code', [('x = 1\n' + 'y = ' + '1 + ' * 40 + '1\n', 'E501'), ('import os\n', 'F401')])
def test_ruff_enforces_the_line_length_and_unused_imports(tmp_path, line, code):
    (tmp_path / 'pyproject.toml').write_text((ROOT / 'pyproject.toml').read_text(encoding='utf-8'), encoding='utf-8')
    (tmp_path / 'sample.py').write_text(line, encoding='utf-8')
    proc = ruff('sample.py', cwd=tmp_path)
    assert proc.returncode == 1 and code in proc.stdout, proc.stdout
