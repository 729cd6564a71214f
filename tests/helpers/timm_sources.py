"""timm's code that is not in its wheel: the model test suite (from the sdist) and the training scripts.

`tools/fetch_timm_tests.sh` puts timm's tests/test_models.py in `.cache/` (or TIMM_TESTS_DIR points
at a copy); train.py and validate.py come from a clone of pytorch-image-models via TIMM_SCRIPTS_DIR,
and the tests that need them skip without it.
"""
import fnmatch
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import List

import pytest
import timm

from . import REPO

SCRIPTS_DIR = os.environ.get('TIMM_SCRIPTS_DIR', '')

needs_scripts = pytest.mark.skipif(
    not (SCRIPTS_DIR and os.path.isfile(os.path.join(SCRIPTS_DIR, 'train.py'))),
    reason="TIMM_SCRIPTS_DIR does not point at a folder with timm's train.py and validate.py "
           "(they are not on PyPI; copy them out of a clone of huggingface/pytorch-image-models)")


def timm_tests_dir() -> Path:
    """The folder holding timm's test_models.py; FileNotFoundError saying how to get it."""
    path = Path(os.environ.get('TIMM_TESTS_DIR', REPO / '.cache' / f'timm-tests-{timm.__version__}'))
    if not (path / 'test_models.py').is_file():
        raise FileNotFoundError(
            f"timm's test suite is not at {path}: run tools/fetch_timm_tests.sh (or set TIMM_TESTS_DIR)")
    return path


def load_timm_test_models() -> ModuleType:
    """timm's test_models as a module object (importing its functions by name would re-collect them)."""
    sys.path.insert(0, str(timm_tests_dir()))
    try:
        import test_models
    finally:
        sys.path.pop(0)
    return test_models


def suite_models() -> List[str]:
    """Every architecture of timm-gcp that timm's suite builds as `create_model(name)`: all but the generic models."""
    from timm_gcp.models.registry import GCP_MODULES, generic_names

    return sorted(n for module in GCP_MODULES for n in timm.list_models(module=module) if n not in generic_names())


def is_non_std(test_models: ModuleType, name: str) -> bool:
    """Whether timm's suite treats `name` as a non-standard model (no forward_features / features tests)."""
    return any(fnmatch.fnmatch(name, f) for f in test_models.NON_STD_FILTERS)
