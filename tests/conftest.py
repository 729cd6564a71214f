"""Fixtures shared by several test modules."""
from pathlib import Path

import pytest

from tests.helpers.fake_hub import install_fake_hub
from tests.helpers.images import write_images
from tests.helpers.scripts import write_train_stub
from tests.helpers.timm_sources import load_timm_test_models

# the longest single piece of the suite (timm's own model tests, in a subprocess of two workers): first, so that
# under `-n` (pyproject.toml) the other worker runs the rest of the suite meanwhile instead of after it
FIRST = ('test_timm_suite.py',)


def pytest_collection_modifyitems(items) -> None:
    items.sort(key=lambda item: item.path.name not in FIRST)  # stable: the order within each group stays


@pytest.fixture(scope='session')
def timm_tm():
    """timm's own tests/test_models.py as a module object."""
    return load_timm_test_models()


@pytest.fixture
def fake_hub(monkeypatch):
    """The Hub client replaced by a fake that records what would be uploaded (no network)."""
    return install_fake_hub(monkeypatch)


@pytest.fixture
def stub(tmp_path) -> Path:
    """A train.py look-alike (tests/helpers/scripts.py) for the launcher and `timm-gcp launch`."""
    return write_train_stub(tmp_path / 'scripts')


@pytest.fixture
def data(tmp_path) -> Path:
    """An ImageFolder with a 'train' and a 'val' split of one class."""
    root = tmp_path / 'data'
    write_images(root / 'train' / 'a')
    write_images(root / 'val' / 'a')
    return root
