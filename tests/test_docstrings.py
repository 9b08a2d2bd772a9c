"""Every Examples block in the package's docstrings runs and prints what it shows."""

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import hyperspy_hnmf

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(hyperspy_hnmf.__path__, "hyperspy_hnmf.")
)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, module_name, extraglobs={"np": np}) if t.examples]
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"


def test_every_public_function_has_an_example():
    missing = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if callable(obj) and ">>>" not in (obj.__doc__ or ""):
                missing.append(f"{module_name}.{name}")
    assert not missing, missing
