"""The package's floors (docs/architecture.md, "The floors"): imports run one way, lazy ones included."""
import ast
from pathlib import Path
from typing import Dict, List, Set

import timm_gcp

PACKAGE = Path(timm_gcp.__file__).parent

# the sub-packages and top-level modules, bottom floor first (docs/architecture.md, "The floors")
FLOORS = ('layers', 'checkpoints', 'models', 'measure', 'export', 'convert', 'hub', 'training', 'analysis', 'demo',
          'bench', 'cli', 'launch')
BELOW_EVERYTHING = ('_errors', '_extras')


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def import_graph(root: Path = PACKAGE) -> Dict[str, Set[str]]:
    """Every module of the package at `root` -> the package's modules it imports anywhere (functions included)."""
    paths = {_module_name(p, root): p for p in root.rglob('*.py')}
    graph = {}
    for name, path in paths.items():
        package = name.split('.') if path.name == '__init__.py' else name.split('.')[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = '.'.join(package[:len(package) - node.level + 1] + [node.module or ''] if node.level
                                else [node.module or '']).strip('.')
                candidates = [base] + [f'{base}.{a.name}' for a in node.names]
            else:
                continue
            for target in candidates:
                while target and target not in paths:
                    target = target.rpartition('.')[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def circles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _floor(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def _without_faces(graph: Dict[str, Set[str]]) -> Dict[str, Set[str]]:
    """Drop the edges from a module to the `__init__` of a package it lies in (its re-export face)."""
    return {m: {t for t in ts if not m.startswith(t + '.')} for m, ts in graph.items()}


def test_no_module_imports_around_a_circle():
    assert circles(_without_faces(import_graph())) == []


def test_no_sub_packages_import_around_a_circle():
    floors = {}
    for module, targets in import_graph().items():
        a = _floor(module)
        floors.setdefault(a, set()).update(b for b in map(_floor, targets) if a and b and b != a)
    assert circles(floors) == []


def test_every_import_points_down_the_floors():
    known = set(FLOORS) | set(BELOW_EVERYTHING)
    rank = {floor: i for i, floor in enumerate(FLOORS)}
    upward = []
    for module, targets in import_graph().items():
        a = _floor(module)
        assert not a or a in known, f'{module}: a floor docs/architecture.md does not name'
        for target in targets:
            b = _floor(target)
            if a and b and a != b and b not in BELOW_EVERYTHING and rank[b] > rank[a]:
                upward.append(f'{module} -> {target}')
    assert upward == []


def test_the_finder_sees_lazy_and_relative_imports_around_a_circle(tmp_path):
    pkg = tmp_path / 'pkg'
    (pkg / 'sub').mkdir(parents=True)
    (pkg / '__init__.py').write_text('')
    (pkg / 'sub' / '__init__.py').write_text('from .b import g\n')
    (pkg / 'a.py').write_text('import os\n\ndef f():\n    from .sub.b import g\n    return g\n')
    (pkg / 'sub' / 'b.py').write_text('def g():\n    from ..a import f\n    return f\n')
    graph = import_graph(pkg)
    assert graph == {'pkg': set(), 'pkg.a': {'pkg.sub.b'}, 'pkg.sub': {'pkg.sub.b'}, 'pkg.sub.b': {'pkg.a'}}
    assert circles(_without_faces(graph)) == [['pkg.a', 'pkg.sub.b']]
