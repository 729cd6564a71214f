"""timm's feature tests that its test_models.py parametrizes over timm's own modules only, on timm-gcp's models.

Not collected by the project's own run: tests/test_timm_suite.py passes this file to the pytest run of
timm's suite (cwd: timm's tests folder, so `test_models` is timm's module), where the models are
built once and the tests spread over two workers like the rest of the suite.
"""
import pytest

import test_models as timm_tm
from tests.helpers.timm_sources import suite_models


@pytest.mark.parametrize('model_name', suite_models())
def test_gcp_forward_intermediates(model_name):
    timm_tm.test_model_forward_intermediates(model_name, 1)
    timm_tm.test_model_forward_intermediates_features(model_name, 1)


@pytest.mark.parametrize('model_name', suite_models())
def test_gcp_prune_contract(model_name):
    timm_tm.test_prune_intermediate_layers_contract(model_name)
    timm_tm.test_prune_intermediate_layers_params_used(model_name)
