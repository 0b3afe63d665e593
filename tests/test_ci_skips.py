"""The CI rule of tests/conftest.py: under CI=true a skip fails the run, unless marked optional."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize(
    ("reason", "ci", "workers", "code"),
    [
        ("PostgreSQL not reachable", "true", [], 1),
        # `make test` runs the suite in worker processes: their skips reach the main process.
        ("PostgreSQL not reachable", "true", ["-n", "2"], 1),
        ("PostgreSQL not reachable", "", [], 0),
        ("optional: extra check", "true", [], 0),
    ],
)
def test_a_skip_fails_only_on_ci(tmp_path: Path, reason: str, ci: str, workers: list[str], code: int) -> None:
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_one.py").write_text(
        f"import pytest\n\ndef test_needs_a_service():\n    pytest.skip({reason!r})\n"
    )
    env = {**os.environ, "CI": ci}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *workers, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == code, done.stdout
