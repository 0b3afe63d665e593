"""The README's two set-up commands exist and CI runs the test one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_gives_the_demo_and_test_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make demo\b", readme, re.MULTILINE)
    assert re.search(r"^make test\b", readme, re.MULTILINE)
    targets = re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert {"demo", "test"} <= set(targets)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_gives_the_image_commands_and_ci_runs_the_check() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make image\b", readme, re.MULTILINE)
    assert re.search(r"^make image-test\b", readme, re.MULTILINE)
    targets = re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert {"image", "image-test"} <= set(targets)
    assert "make image-test CONTAINER=.ci/containers" in (ROOT / ".ci" / "run").read_text()


def test_the_demo_target_runs_querywatch_up_demo() -> None:
    makefile = (ROOT / "Makefile").read_text()
    demo = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "querywatch up --demo" in demo
