"""Citations of docs/ resolve: every `docs/FILE.md, "Heading"` names a page and one of its `##` headings."""
import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / 'docs'
CITING = ('timm_gcp', 'tests', 'tools', 'train_scripts')
SUFFIXES = ('.py', '.sh', '.yaml', '.md')

# `docs/FILE.md, "Heading"` or `..., "Heading" to "Heading"`; a line break (and a comment's '#') may
# stand after the comma
CITATION = re.compile(r'docs/([\w-]+\.md),\s*(?:#\s*)?"([^"\n]+)"(?:\s+to\s+"([^"\n]+)")?')
# `(README, "Heading")`: the README's own sections
README_CITATION = re.compile(r'\(README(?:\.md)?,\s*(?:#\s*)?"([^"\n]+)"')
PAGE = re.compile(r'docs/([\w-]+\.(?:md|png))')
PLACEHOLDER = 'FILE.md'  # docs/README.md spells the form out


def _citing_files() -> List[Path]:
    files = [ROOT / 'README.md', *sorted(DOCS.glob('*.md'))]
    for folder in CITING:
        files += sorted(p for p in (ROOT / folder).rglob('*') if p.suffix in SUFFIXES and p.is_file())
    return [p for p in files if p.resolve() != Path(__file__).resolve()]


def headings(page: Path) -> Set[str]:
    """The `##` headings of a Markdown page, outside code blocks."""
    found, in_code = set(), False
    for line in page.read_text(encoding='utf-8').splitlines():
        if line.startswith('```'):
            in_code = not in_code
        elif not in_code and line.startswith('## '):
            found.add(line[3:].strip())
    return found


def citations(text: str) -> List[Tuple[str, str]]:
    """(page, heading) of every citation in `text`; a range cites both of its ends."""
    out = []
    for page, first, last in CITATION.findall(text):
        if page != PLACEHOLDER:
            out += [(page, first)] + ([(page, last)] if last else [])
    return out


def _all_citations() -> Dict[Path, List[Tuple[str, str]]]:
    return {p: citations(p.read_text(encoding='utf-8')) for p in _citing_files()}


def test_every_cited_heading_exists():
    known = {page.name: headings(page) for page in DOCS.glob('*.md')}
    broken = [f'{path.relative_to(ROOT)}: docs/{page}, "{heading}"'
              for path, cited in _all_citations().items() for page, heading in cited
              if heading not in known.get(page, ())]
    assert broken == []


def test_every_cited_readme_section_exists():
    known = headings(ROOT / 'README.md')
    broken = [f'{path.relative_to(ROOT)}: (README, "{heading}")' for path in _citing_files()
              for heading in README_CITATION.findall(path.read_text(encoding='utf-8')) if heading not in known]
    assert broken == []


def test_every_named_page_exists():
    missing = [f'{path.relative_to(ROOT)}: docs/{name}' for path in _citing_files()
               for name in PAGE.findall(path.read_text(encoding='utf-8'))
               if name != PLACEHOLDER and not (DOCS / name).is_file()]
    assert missing == []


def test_the_code_cites_the_docs():
    cited = {c for cs in _all_citations().values() for c in cs}
    assert len(cited) >= 20  # the check would pass vacuously if the pattern stopped matching


@pytest.mark.parametrize('text, expected', [
    ('see docs/methods.md, "iSQRT-COV".', [('methods.md', 'iSQRT-COV')]),
    ('(docs/checkpoints.md,\n    # "MindSpore numerics")', [('checkpoints.md', 'MindSpore numerics')]),
    ('docs/methods.md, "Covariance" to "DropCov"', [('methods.md', 'Covariance'), ('methods.md', 'DropCov')]),
    ('docs/methods.md alone', []),
])
def test_citation_pattern(text, expected):
    assert citations(text) == expected


def test_headings_skip_code_blocks(tmp_path):
    page = tmp_path / 'p.md'
    page.write_text('# Title\n\n## Real\n\n```bash\n## not a heading\n```\n### Sub\n', encoding='utf-8')
    assert headings(page) == {'Real'}
