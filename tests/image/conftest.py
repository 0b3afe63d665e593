"""Fixtures of the image tests (``make image-test``): the engine, the image, and its figures.

``QUERYWATCH_IMAGE`` names the image built by ``make image``; ``QUERYWATCH_CONTAINER`` the
engine command (``docker``, ``podman``, or CI's ``.ci/containers``). The figures the tests
measure (sizes, start-up times, memory) are printed at the end of the run.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator

import pytest

from tests.image.container import ContainerEngine

FIGURES: dict[str, str] = {}


@pytest.fixture(scope="session")
def engine() -> Iterator[ContainerEngine]:
    image, command = os.environ.get("QUERYWATCH_IMAGE"), os.environ.get("QUERYWATCH_CONTAINER")
    if not image or not command:
        pytest.fail("the image tests need QUERYWATCH_IMAGE and QUERYWATCH_CONTAINER: run `make image-test`")
    containers = ContainerEngine(shlex.split(command), image)
    containers("image", "inspect", image)  # fails at once if it was not built
    yield containers
    containers.remove_all()


@pytest.fixture(scope="session")
def figures() -> dict[str, str]:
    return FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("image figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
