"""features/ and models/ stay pure: no adapters, no I/O libraries, no clock."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("kafka", "sqlalchemy", "fastapi", "starlette", "httpx", "requests", "detector", "uvicorn")


def _core_lines_matching(pattern: re.Pattern[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{n}"
        for package in ("features", "models")
        for path in (ROOT / package).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]


def test_core_modules_import_no_adapter_library() -> None:
    assert _core_lines_matching(re.compile(r"^\s*(?:import|from)\s+(" + "|".join(FORBIDDEN) + r")\b")) == []


def test_importing_the_core_loads_no_adapter_library() -> None:
    # river itself imports sqlalchemy when it is installed (river.stream.iter_sql), so only
    # the libraries no dependency of the core pulls in are checked at run time.
    code = (
        "import sys, features.client, models.evidence, models.profile, models.population, models.reasons;"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(out.stdout.strip().split(","))
    runtime_forbidden = set(FORBIDDEN) - {"sqlalchemy"}
    assert not loaded & runtime_forbidden, loaded & runtime_forbidden


def test_core_never_reads_the_clock() -> None:
    clock = r"time\.time\(|datetime\.now\(|datetime\.utcnow\(|time\.monotonic\(|perf_counter\("
    assert _core_lines_matching(re.compile(clock)) == []
