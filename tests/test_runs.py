"""The runs behind the measured numbers of README.md and docs/: each is recorded in docs/runs/NAME/ (its command,
its printed output and what it wrote), and every printed table the pages show is a part of a recorded output.

The runs themselves take minutes; `bash docs/runs/NAME/command.sh` from the repository root repeats one.
"""
import re
import shlex
from pathlib import Path
from typing import List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNS = sorted(p for p in (ROOT / 'docs' / 'runs').iterdir() if p.is_dir())
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
# the first lines of what the commands print: a per-epoch table, a summary table, a benchmark table
PRINTED = re.compile(r'^(epoch  train loss|metric +\||\| seed \||model +\|)', re.MULTILINE)


def _text_blocks(page: Path) -> List[str]:
    return re.findall(r'^```text\n(.*?)^```', page.read_text(encoding='utf-8'), re.MULTILINE | re.DOTALL)


def _printed_blocks() -> List[Tuple[str, str]]:
    return [(page.name, block) for page in PAGES for block in _text_blocks(page) if PRINTED.search(block)]


def _command(run: Path) -> List[str]:
    lines = [line for line in (run / 'command.sh').read_text().splitlines() if not line.startswith('#')]
    return shlex.split(' '.join(line.rstrip('\\') for line in lines))


def test_the_pages_show_recorded_runs():
    assert len(RUNS) >= 5 and len(_printed_blocks()) >= 4


@pytest.mark.parametrize('page, block', _printed_blocks(), ids=lambda v: v if v.endswith('.md') else '')
def test_a_printed_block_is_from_a_recorded_output(page, block):
    """Every line of the block is a line that one recorded run printed (a page may leave rows out)."""
    lines = {line.rstrip() for line in block.strip('\n').splitlines()}
    found = [run.name for run in RUNS
             if lines <= {line.rstrip() for line in (run / 'stdout.txt').read_text(encoding='utf-8').splitlines()}]
    assert found, f'{page}: a printed block is in no docs/runs/*/stdout.txt:\n{block[:300]}'


@pytest.mark.parametrize('run', RUNS, ids=lambda p: p.name)
def test_a_run_records_its_command_and_outputs(run):
    command = _command(run)
    assert command[0] == 'timm-gcp' and (run / 'stdout.txt').stat().st_size > 0
    out = [command[i + 1] for i, arg in enumerate(command) if arg in ('--out-dir', '--json')]
    assert out and all(Path(o) in (run.relative_to(ROOT), run.relative_to(ROOT) / Path(o).name) for o in out)
    written = {p.suffix for p in run.iterdir()} - {'.sh', '.txt'}
    assert '.json' in written, f'{run.name}: the numbers (JSON) the command wrote are not recorded'
