"""Every fenced code block of README.md and of the guides in docs/ that show commands (PAGES), whatever
they hold when the test runs.

* `python` blocks run (exec), each in a fresh namespace. Blocks that load weights from the Hub
  (`pretrained=True`, `hf-hub:...`, `hf_hub_id=...`) run offline against a local Hub cache
  (HF_HUB_CACHE, huggingface_hub's layout: models--ORG--NAME/snapshots/<rev>/ + refs/main) holding
  `save_for_hf` exports of randomly initialized models of the repos they name. Blocks that load a
  local export folder (`local-dir:NAME`, transformers' `from_pretrained('NAME')` / `model='NAME'`)
  run in a temporary working directory holding `export_for_hub` folders of those names.
* `bash` blocks are checked, not run (they install, train or need files users have): every
  command must be one this test knows, `timm-gcp` / `python -m timm_gcp.cli` subcommands and flags
  must parse with the CLI's own parsers, `python -m` modules must import, the scripts and files
  under the repository they name must exist, and `pip install` names only extras pyproject.toml
  defines. `tools/run.sh CMD` is checked as CMD.
* Other blocks (`text`: printed output) are not code.
"""
import argparse
import importlib
import importlib.util
import re
import shlex
import tomllib
from pathlib import Path
from typing import List, Set, Tuple

import huggingface_hub.constants
import pytest
import timm
from timm.models import get_pretrained_cfg, save_for_hf, split_model_name_tag

import timm_gcp  # noqa: F401  (registers the models)
from timm_gcp.cli import SUBCOMMANDS
from timm_gcp.export.folder import export_for_hub

from tests.helpers import REPO

SHA = '0123456789abcdef0123456789abcdef01234567'
FENCE = re.compile(r'^```(\w*)\n(.*?)^```', re.MULTILINE | re.DOTALL)


def readme_blocks(text: str) -> List[Tuple[str, str]]:
    """(language, code) of each fenced block."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


# the README, and the pages of docs/ that its flows moved to (docs/README.md, "Guides")
PAGES = ('README.md', 'docs/setup.md', 'docs/training.md', 'docs/deploy.md', 'docs/demo.md', 'docs/benchmarks.md')


def page_blocks(page: str, languages: Tuple[str, ...]) -> List[Tuple[str, str, str]]:
    """(test id, page, code) of each block of `page` in one of `languages`, numbered per page and language."""
    blocks = [code for lang, code in readme_blocks((REPO / page).read_text(encoding='utf-8')) if lang in languages]
    return [(f'{Path(page).stem}-{languages[0]}{i}', page, code) for i, code in enumerate(blocks)]


PYTHON = [block for page in PAGES for block in page_blocks(page, ('python',))]
BASH = [block for page in PAGES for block in page_blocks(page, ('bash', 'sh', 'shell'))]


def hub_repos(code: str) -> Set[str]:
    """The Hub repos a block loads weights from."""
    repos = set(re.findall(r"hf[-_]hub:([\w.-]+/[\w.-]+)", code))
    repos |= set(re.findall(r"hf_hub_id=['\"]([\w.-]+/[\w.-]+)['\"]", code))
    for name in re.findall(r"create_model\(\s*['\"]([\w.]+)['\"][^)]*pretrained=True", code):
        if name.startswith(('hf-hub', 'hf_hub')):
            continue
        cfg = get_pretrained_cfg(name)
        if cfg is not None and cfg.hf_hub_id and not re.search(r'hf_hub_id=', code):
            repos.add(cfg.hf_hub_id)
    # a GCP model on a timm backbone loads the backbone's weights from the backbone's repo
    for backbone in re.findall(r"backbone=['\"]([\w.]+)['\"][^)]*pretrained=True", code):
        repos.add(get_pretrained_cfg(backbone).hf_hub_id)
    return repos


def local_exports(code: str) -> Set[str]:
    """The export folders a block loads from the working directory."""
    names = set(re.findall(r"local-dir:([\w.-]+)", code))
    names |= set(re.findall(r"(?:from_pretrained\(|model=)['\"]([\w.-]+)['\"]", code))
    return {n for n in names if timm.is_model(split_model_name_tag(n)[0])}


def _add_to_cache(cache: Path, repo_id: str) -> None:
    """A randomly initialized export of the repo's architecture (the name after ORG/, up to its tag)."""
    snapshot = cache / ('models--' + repo_id.replace('/', '--')) / 'snapshots' / SHA
    if snapshot.exists():
        return
    arch, _ = split_model_name_tag(repo_id.split('/', 1)[1])
    save_for_hf(timm.create_model(arch), snapshot, safe_serialization=True)
    (snapshot.parents[1] / 'refs').mkdir()
    (snapshot.parents[1] / 'refs' / 'main').write_text(SHA)


@pytest.fixture(scope='module')
def hub_cache(tmp_path_factory):
    return tmp_path_factory.mktemp('hub_cache')


@pytest.mark.parametrize('page, code', [
    pytest.param(page, code, id=block_id, marks=[pytest.mark.slow] if hub_repos(code) or local_exports(code) else [])
    for block_id, page, code in PYTHON
])
def test_python_block_runs(page, code, hub_cache, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in local_exports(code):
        export_for_hub(timm.create_model(split_model_name_tag(name)[0]), tmp_path / name)
    repos = hub_repos(code)
    if repos:
        for repo_id in repos:
            _add_to_cache(hub_cache, repo_id)
        for name, value in (('HF_HUB_OFFLINE', True), ('HF_HUB_CACHE', str(hub_cache))):
            monkeypatch.setenv(name, str(int(value)) if isinstance(value, bool) else value)
            monkeypatch.setattr(huggingface_hub.constants, name, value)  # read at import time
    exec(compile(code, page, 'exec'), {'__name__': '__readme__'})


def commands(code: str) -> List[List[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped, split at && and ;."""
    commands = []
    for line in code.replace('\\\n', ' ').splitlines():
        for part in re.split(r'&&|;', line):
            words = shlex.split(part, comments=True)
            if words:
                commands.append(words)
    return commands


def _parse_cli(args: List[str]) -> None:
    """Parse `timm-gcp ARGS` with the subcommand's own parser (argparse exits on an error)."""
    assert args and args[0] in SUBCOMMANDS, f'unknown timm-gcp subcommand in {args}'
    parser = argparse.ArgumentParser(prog=f'timm-gcp {args[0]}')
    importlib.import_module(SUBCOMMANDS[args[0]][0]).add_arguments(parser)
    parser.parse_args(args[1:])


def _check_module(module: str, args: List[str]) -> None:
    """`python -m module ARGS`: the module imports; timm_gcp's command lines parse with their parsers."""
    assert importlib.util.find_spec(module) is not None, f'python -m {module}: no such module'
    if module == 'timm_gcp.cli':
        _parse_cli(args)
    elif module == 'timm_gcp.launch':
        parser = argparse.ArgumentParser(prog='python -m timm_gcp.launch')
        importlib.import_module(module).add_arguments(parser)
        parser.parse_args(args)


def check_command(words: List[str]) -> None:
    """AssertionError (or argparse's SystemExit) unless `words` is a command this README may show."""
    cmd, args = words[0], words[1:]
    if cmd == 'export':
        assert all('=' in a for a in args), words
    elif cmd == 'timm-gcp':
        _parse_cli(args)
    elif cmd == 'bash':
        script = REPO / args[0]
        assert script.is_file(), f'{args[0]}: no such script in the repository'
        if args[0] == 'tools/run.sh':
            check_command(args[1:])
            return
        for arg in args[1:]:
            if re.fullmatch(r'[\w./-]+\.(ya?ml|sh|py)', arg) and not arg.startswith('/'):
                assert (REPO / arg).is_file(), f'{arg}: no such file in the repository'
    elif cmd in ('python', 'python3'):
        assert args[0] == '-m', words
        _check_module(args[1], args[2:])
    elif cmd == 'pip':
        assert args[0] == 'install', words
        extras = tomllib.loads((REPO / 'pyproject.toml').read_text())['project']['optional-dependencies']
        for arg in args[1:]:
            match = re.fullmatch(r'timm-gcp\[([\w,]+)\]', arg)
            assert match and set(match.group(1).split(',')) <= set(extras), f'pip install {arg}: not an extra of ours'
    elif cmd == 'torchrun':
        # torchrun's options, then `-m MODULE ARGS` or the path of a script (in the user's clone of timm)
        if '-m' in args:
            at = args.index('-m')
            _check_module(args[at + 1], args[at + 2:])
    else:
        raise AssertionError(f'a command this test does not know how to check: {words}')


@pytest.mark.parametrize('code', [pytest.param(code, id=block_id) for block_id, _, code in BASH])
def test_bash_block_commands_are_valid(code):
    for words in commands(code):
        check_command(words)


def test_blocks_are_found_and_checks_fail_on_bad_commands():
    blocks = readme_blocks('text\n```python\nx = 1\n```\n\n```bash\nbash tools/setup.sh && \\\n  timm-gcp demo\n```\n')
    assert blocks == [('python', 'x = 1\n'), ('bash', 'bash tools/setup.sh && \\\n  timm-gcp demo\n')]
    assert commands(blocks[1][1]) == [['bash', 'tools/setup.sh'], ['timm-gcp', 'demo']]
    with pytest.raises(SystemExit):
        check_command(['timm-gcp', 'bench', '--no-such-flag'])
    with pytest.raises(AssertionError, match='unknown timm-gcp subcommand'):
        check_command(['timm-gcp', 'train'])
    with pytest.raises(AssertionError, match='no such script'):
        check_command(['bash', 'tools/no_such.sh'])
    with pytest.raises(AssertionError, match='does not know'):
        check_command(['curl', 'https://example.com'])
    assert hub_repos("timm.create_model('hf-hub:org/arch.tag', pretrained=True)") == {'org/arch.tag'}
    mine = "timm.create_model('local-dir:resnet18_isqrt.mine', pretrained=True)"
    assert local_exports(mine) == {'resnet18_isqrt.mine'}
    check_command(['pip', 'install', 'timm-gcp[onnx]'])
    with pytest.raises(AssertionError, match='not an extra of ours'):
        check_command(['pip', 'install', 'timm-gcp[no_such_extra]'])


def test_the_code_map_names_every_sub_package_and_no_stale_path():
    """docs/README.md, "Where the code is": every sub-package and top-level module, and only paths that exist."""
    text = (REPO / 'docs' / 'README.md').read_text(encoding='utf-8')
    table = text[text.index('## Where the code is'):]
    package = REPO / 'timm_gcp'
    names = {f'timm_gcp/{p.name}/' for p in package.iterdir() if (p / '__init__.py').is_file()}
    names |= {f'timm_gcp/{p.name}' for p in package.glob('*.py') if p.name != '__init__.py'}
    assert sorted(n for n in names if f'`{n}`' not in table) == []
    named = re.findall(r'`((?:timm_gcp|train_scripts|tools|model_cards|tests)/[\w./]*)`', table)
    assert named and [n for n in named if not (REPO / n).exists()] == []


def test_ci_runs_the_readme_set_up_and_test_commands():
    """.ci/run runs what the README's first block tells a newcomer to run, and nothing else."""
    ci = [words for words in commands((REPO / '.ci' / 'run').read_text()) if words[0] == 'bash']
    first = BASH[0]
    assert first[1] == 'README.md' and ci == commands(first[2]) == [
        ['bash', 'tools/setup.sh'], ['bash', 'tools/run.sh', 'python', '-m', 'pytest', '-q']]
