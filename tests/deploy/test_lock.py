"""The image's lock files pin, with hashes, what pyproject.toml asks for at run time (base and [server])."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pins(path: Path) -> dict[str, str]:
    text = path.read_text()
    entries = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)", text, re.M)
    pinned = re.findall(r"^[A-Za-z0-9_.-]+==", text, re.M)
    assert entries and len(entries) == len(pinned), f"{path.name}: an entry without hashes"
    return {canonicalize_name(name): version for name, version, _ in entries}


def test_the_runtime_lock_pins_every_dependency_and_nothing_optional() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = dict(project["optional-dependencies"])
    pins = _pins(ROOT / "deploy" / "requirements.lock")
    for spec in map(Requirement, project["dependencies"] + extras.pop("server")):
        name = canonicalize_name(spec.name)
        assert name in pins, f"{name} is a dependency but not in deploy/requirements.lock (make lock)"
        assert spec.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {spec}"
    for extra in extras.values():  # demo, test: never in the image
        for spec in map(Requirement, extra):
            assert canonicalize_name(spec.name) not in pins, spec.name


def test_the_build_lock_pins_the_build_backend() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    pins = _pins(ROOT / "deploy" / "build.lock")
    assert {canonicalize_name(Requirement(r).name) for r in requires} <= set(pins)
