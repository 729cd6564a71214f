"""pytest plugin for timm's test_models.py on timm-gcp's models: each model is built once per set of arguments.

timm's suite builds the model again in every test; on a small CPU the weight initialization of tens of
millions of parameters costs more than most tests' forward passes. Here `timm.create_model` (which
test_models.py imports by name, so the plugin must load before it: `-p tests.helpers.timm_suite_plugin`)
keeps the last models it built and returns a deep copy: the same architecture, configuration and
buffers a new build gives, with the first build's random weights. Builds that load weights are not
kept; those under another default device or other layer settings (scriptable, exportable, no-JIT)
are keyed apart.

The tests are grouped per architecture (`xdist_group`, for `pytest -n N --dist loadgroup`), so one
architecture's tests run one after another on one worker and a short cache serves them all.
"""
import copy
from collections import OrderedDict
from typing import Any, Tuple

import pytest
import timm
import torch
import timm.models
from timm.layers import is_exportable, is_no_jit, is_scriptable
from timm.models import split_model_name_tag

import timm_gcp  # noqa: F401  (registers the models)

_build = timm.create_model
_CACHE: 'OrderedDict[Tuple[Any, ...], Any]' = OrderedDict()
_CACHE_SIZE = 6  # a test builds at most a few variants of one architecture


def create_model(model_name: str, pretrained: bool = False, **kwargs: Any):
    if pretrained:
        return _build(model_name, pretrained=pretrained, **kwargs)
    key = (model_name, repr(sorted(kwargs.items())), str(torch.get_default_device()),
           is_scriptable(), is_exportable(), is_no_jit())
    if key not in _CACHE:
        _CACHE[key] = _build(model_name, **kwargs)
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return copy.deepcopy(_CACHE[key])


timm.create_model = create_model
timm.models.create_model = create_model


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        name = getattr(item, 'callspec', None) and item.callspec.params.get('model_name')
        if isinstance(name, str):
            item.add_marker(pytest.mark.xdist_group(split_model_name_tag(name)[0]))
