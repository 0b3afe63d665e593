"""The Prometheus alerting rules in deploy/prometheus: valid, and they fire when they should."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (Debian's prometheus package)")


def promtool(*args: str) -> None:
    """Run ``promtool`` on the rules directory; its own output is the failure message."""
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], cwd=RULES, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_rules_check() -> None:
    promtool("check", "rules", "alerts.yml")


@needs_promtool
def test_rules_unit_tests() -> None:
    promtool("test", "rules", "alerts_test.yml")
