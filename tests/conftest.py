"""Fixtures shared by several test modules."""
import pytest

from tests.helpers.fake_hub import install_fake_hub
from tests.helpers.timm_sources import load_timm_test_models


@pytest.fixture(scope='session')
def timm_tm():
    """timm's own tests/test_models.py as a module object."""
    return load_timm_test_models()


@pytest.fixture
def fake_hub(monkeypatch):
    """The Hub client replaced by a fake that records what would be uploaded (no network)."""
    return install_fake_hub(monkeypatch)
