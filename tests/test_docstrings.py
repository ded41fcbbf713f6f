"""Every runnable docstring example is executed (numpyro style: examples are tested)."""

import doctest
import importlib

import pytest

MODULES = ["vpop._engine", "vpop._population", "vpop._t1d"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
