"""Run the doctests of every querywatch module, imported by its installed name.

pytest's ``--doctest-modules`` would import ``features/x.py`` as ``features.x`` (the folder
name), a second copy of ``querywatch.features.x``; walking the installed packages keeps one.
The packages are the ones ``pyproject.toml`` installs, so a new one cannot be left out.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import tomllib
from pathlib import Path

import pytest

_INSTALLED = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
_ALL = _INSTALLED["tool"]["setuptools"]["packages"]
#: The installed top-level packages (walking them reaches every subpackage).
PACKAGES = tuple(p for p in _ALL if not any(p.startswith(q + ".") for q in _ALL))
#: Modules that act when imported: the ``-m`` entry point and Alembic's environment.
ACTS_ON_IMPORT = ("querywatch.detector.cli.__main__", "querywatch.migrations.env")


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


def test_every_installed_package_is_walked() -> None:
    assert set(PACKAGES) == {
        "querywatch.detector",
        "querywatch.features",
        "querywatch.migrations",
        "querywatch.models",
    }
