"""timm's own model test suite (tests/test_models.py of the installed timm) against every model we register.

The suite runs once, in a subprocess on two pytest-xdist workers, with `tests/helpers/timm_suite_plugin.py`
loaded before collection (it registers the models and builds each one once per set of arguments), on
every registered name and tag of this package but the generic models (which need `backbone=`); each
model then gets its own pass/fail here. The tests that timm selects only for its own modules
(forward_intermediates, pruning) run in the same subprocess from tests/helpers/timm_suite_extra.py.
`tools/fetch_timm_tests.sh` puts the suite in `.cache/` (or point TIMM_TESTS_DIR at a copy).
The pretrained-weight tests run in tests/test_hub.py against a local Hub cache; that no name of ours
shadows one of timm's is checked in tests/test_registry.py.
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

import pytest

import timm_gcp  # noqa: F401  (registers the models)

from tests.helpers import REPO
from tests.helpers.timm_sources import is_non_std, suite_models, timm_tests_dir

pytestmark = pytest.mark.slow  # timm's suite runs every registered model: minutes on a small CPU

MODELS = suite_models()
# every model gets at least these from timm's suite (fx-torchscript too, off GitHub Actions); timm runs
# features_only tests on its non-standard names (vit_*, deit*) only through forward_intermediates
CORE_TESTS = {'test_model_forward', 'test_model_backward', 'test_model_forward_fx',
              # timm's forward_intermediates and pruning tests, which it runs on its own modules only
              'test_gcp_forward_intermediates', 'test_gcp_prune_contract'}
STD_TESTS = {'test_model_forward_features'}


@pytest.fixture(scope='session')
def suite_results(tmp_path_factory):
    """Run timm's test_models.py on our models once; results per model name: {test id: outcome}."""
    tests_dir = timm_tests_dir()
    report = tmp_path_factory.mktemp('timm_suite') / 'junit.xml'
    selection = '(' + ' or '.join(MODELS) + ') and not pretrained'
    env = {k: v for k, v in os.environ.items() if k != 'GITHUB_ACTIONS'}
    # two workers of one thread each: most of the suite is Python (tracing, scripting, building), not BLAS
    env.update(PYTHONPATH=os.pathsep.join(filter(None, (str(REPO), env.get('PYTHONPATH')))), OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-p', 'tests.helpers.timm_suite_plugin', 'test_models.py',
         str(REPO / 'tests' / 'helpers' / 'timm_suite_extra.py'), '-k', selection,
         '-q', '-p', 'no:cacheprovider', '-n', '2', '--dist', 'loadgroup', f'--junitxml={report}'],
        cwd=tests_dir, env=env, capture_output=True, text=True, timeout=3600,
    )
    if not report.exists():
        raise RuntimeError(f"timm's suite did not run:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    results = defaultdict(dict)
    for case in ET.parse(report).getroot().iter('testcase'):
        test_id = case.get('name')
        params = test_id[test_id.index('[') + 1:-1].split('-') if '[' in test_id else []
        outcome = 'passed'
        for child in case:
            if child.tag in ('failure', 'error'):
                outcome = f'{child.tag}: {child.get("message", "")[:500]}'
            elif child.tag == 'skipped':
                outcome = f'skipped: {child.get("message", "")}'
        for param in params:
            arch = param.split('.')[0]
            if arch in MODELS:
                results[arch][test_id] = outcome
    return results


@pytest.mark.parametrize('model_name', MODELS)
def test_timm_model_suite(suite_results, timm_tm, model_name):
    results = suite_results[model_name]
    failed = {k: v for k, v in results.items() if not v.startswith(('passed', 'skipped'))}
    assert not failed, failed
    ran = {test_id.split('[')[0] for test_id, outcome in results.items() if outcome == 'passed'}
    non_std = is_non_std(timm_tm, model_name)
    expected = CORE_TESTS if non_std else CORE_TESTS | STD_TESTS
    assert expected <= ran, f'timm tests that did not run for {model_name}: {expected - ran}'
    assert any(t.startswith('test_model_default_cfgs') for t in ran), 'no cfg test ran'


