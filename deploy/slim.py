"""Shrink an installed virtualenv for the runtime image (run in the image's build stage).

Removes what only building or testing needs — the packages' own test suites, C, C++ and
Cython sources, headers, type stubs, static libraries — and strips the symbols from shared
libraries. Stripping can break a library that auditwheel patched (its segments may end up
misaligned), so each library is loaded before and after, in a fresh process, and put back
unless it loads exactly as before. Usage: ``python slim.py /opt/querywatch/lib``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

BUILD_ONLY = {".pyi", ".pxd", ".pyx", ".pxi", ".c", ".h", ".cpp", ".hpp", ".a"}
#: Loads a library as the interpreter would (without running it) and prints the outcome.
LOAD = "import ctypes, sys\ntry:\n ctypes.CDLL(sys.argv[1])\nexcept OSError as e:\n print(e)"


def _outcome(library: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(library)], capture_output=True, text=True, check=False
    )
    return f"{done.returncode} {done.stdout.strip()} {done.stderr.strip()}"


def strip_library(library: Path) -> bool:
    """Strip ``library`` if it still loads the same afterwards; return whether it was stripped."""
    before, original = _outcome(library), library.with_name(library.name + ".unstripped")
    shutil.copy2(library, original)
    subprocess.run(["strip", "--strip-unneeded", str(library)], check=True)
    if _outcome(library) == before:
        original.unlink()
        return True
    original.replace(library)
    return False


def slim(root: Path) -> tuple[int, int, int]:
    """Shrink everything under ``root``; return (files removed, libraries stripped, left whole)."""
    removed = 0
    for directory in sorted(root.rglob("tests"), reverse=True):
        if directory.is_dir():
            removed += sum(1 for f in directory.rglob("*") if f.is_file())
            shutil.rmtree(directory)
    for file in [f for f in root.rglob("*") if f.suffix in BUILD_ONLY and f.is_file()]:
        file.unlink()
        removed += 1
    libraries = [f for f in root.rglob("*.so") if f.is_file() and not f.parent.name.endswith(".libs")]
    stripped = sum(strip_library(library) for library in libraries)
    return removed, stripped, len(libraries) - stripped


if __name__ == "__main__":
    removed, stripped, kept = slim(Path(sys.argv[1]))
    print(f"slim: {removed} files removed, {stripped} libraries stripped, {kept} left whole")
