"""Run the docstring examples of every gaatool module (they are documentation that must stay true)."""
import doctest
import importlib
import pkgutil

import pytest

import gaatool

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(gaatool.__path__, "gaatool.")
                 if not name.startswith("gaatool.pretrained"))


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
