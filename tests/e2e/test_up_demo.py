"""What a newcomer does first: ``querywatch up --demo``, then look at the alerts.

Runs the real command as a subprocess (embedded broker, SQLite, consumer, dispatcher, API,
demo traffic), reads alerts through the API until the whole demo trace was scored, checks
that every simulated thief and no benign client was flagged, then stops it with SIGINT
and checks that no process it started is left.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import httpx
import pytest

from querywatch.detector.simulate.demo import DemoPlan
from tests.ports import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

#: Seconds for the whole demo to be scored (it is sized for well under a minute).
DEMO_DEADLINE_S = 240.0


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid``, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str], Path]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUERYWATCH_")}
    env["QUERYWATCH_DATABASE__URL"] = f"sqlite:///{tmp_path / 'querywatch.db'}"
    truth = tmp_path / "truth.json"
    command = [sys.executable, "-m", "querywatch.detector.cli", "up", "--demo", "--port", str(free_port())]
    log = open(tmp_path / "up.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [*command, "--truth", str(truth)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        yield process, lines, truth
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def _banner(process: subprocess.Popen[str], lines: queue.Queue[str], log: Path) -> dict[str, str]:
    text, deadline = "", time.monotonic() + 120
    while "Press Ctrl-C" not in text:
        assert process.poll() is None, f"querywatch up exited: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no banner: {text}\n{log.read_text()[-3000:]}"
        try:
            text += lines.get(timeout=1)
        except queue.Empty:
            continue
    api = re.search(r"API\s+(http://127\.0\.0\.1:\d+)", text)
    key = re.search(r"Admin API key\s+(qw_\S+)", text)
    assert api and key, text
    return {"api": api.group(1), "key": key.group(1)}


def _metric(body: str, name: str) -> float:
    return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", body, re.MULTILINE))


def test_demo_flags_every_thief_and_no_benign_client_then_stops_clean(demo, tmp_path: Path) -> None:
    process, lines, truth_path = demo
    banner = _banner(process, lines, tmp_path / "up.log")
    plan = DemoPlan()
    events, truth = plan.trace()
    headers = {"X-API-Key": banner["key"]}
    children = _children(process.pid)
    assert children, "the embedded broker should be a child process"

    with httpx.Client(base_url=banner["api"], headers=headers, timeout=10) as api:
        assert api.get("/healthz").status_code == 200 and api.get("/readyz").status_code == 200
        deadline = time.monotonic() + DEMO_DEADLINE_S
        while True:
            assert process.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            metrics = api.get("/metrics").text
            if _metric(metrics, "querywatch_events_processed_total") >= len(events):
                break
            assert time.monotonic() < deadline, f"demo not scored in time:\n{metrics[-2000:]}"
            time.sleep(1)
        alerts = api.get("/v1/alerts", params={"limit": 500}).json()["items"]
        alerted = {a["client_id"] for a in alerts if a["kind"] == "client"}
        campaigns = api.get("/v1/campaigns", params={"limit": 500}).json()["items"]
        clients = api.get("/v1/clients", params={"limit": 500}).json()["items"]
        # The demo's own receiver got every alert, signed and delivered by the dispatcher.
        (endpoint,) = api.get("/v1/webhooks").json()
        while True:
            deliveries = api.get(f"/v1/webhooks/{endpoint['id']}/deliveries", params={"limit": 500}).json()
            if sum(d["state"] == "delivered" for d in deliveries["items"]) >= len(alerts):
                break
            assert time.monotonic() < deadline, deliveries["items"][:3]
            time.sleep(1)
    # Real, current times: every event was stamped when it was sent, during this test.
    now, started = datetime.now(UTC), datetime.now(UTC) - timedelta(seconds=DEMO_DEADLINE_S + 180)
    assert all(started <= datetime.fromisoformat(a["opened_at"]) <= now for a in alerts), alerts[:3]
    assert all(datetime.fromisoformat(c["last_seen"]) <= now for c in clients)

    attackers = {c for c, info in truth.items() if info["role"] == "attack"}
    assert truth_path.exists() and set(json.loads(truth_path.read_text())) == set(truth)
    assert attackers and alerted == attackers, {c: truth[c] for c in alerted ^ attackers}
    # Thieves whose perturbation chains grew from shared seeds may be linked; nobody else is.
    assert {m for c in campaigns for m in c["members"]} <= attackers, campaigns

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=90) == 0, (tmp_path / "up.log").read_text()[-3000:]
    time.sleep(0.5)
    assert not [pid for pid in children if _alive(pid)], "processes left behind"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{banner['api']}/healthz", timeout=2)
