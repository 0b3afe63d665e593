"""Run the doctests of every querywatch module, imported by its installed name.

pytest's ``--doctest-modules`` would import ``features/x.py`` as ``features.x`` (the folder
name), a second copy of ``querywatch.features.x``; walking the installed packages keeps one.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("querywatch.features", "querywatch.models", "querywatch.detector")
#: Modules that act when imported: the ``-m`` entry point and Alembic's environment.
ACTS_ON_IMPORT = ("querywatch.detector.cli.__main__",)


def _module_names() -> list[str]:
    names = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names.append(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
            if info.name not in ACTS_ON_IMPORT:
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _module_names())
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
