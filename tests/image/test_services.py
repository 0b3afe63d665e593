"""The image runs querywatch's production processes against real services.

Each process runs in its own container from the image, as the Kubernetes manifests run it
(read-only root filesystem, writable /tmp, user 10001), with the host's network: this
machine's PostgreSQL, and an embedded broker started on the host. A small simulated trace
goes in; its thieves must come out as alerts through the API; every metrics endpoint must
parse; every container must stop cleanly on SIGTERM. Prints serve's start-to-/readyz time,
the processes' memory and the numba compilation cost on a cold start.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from querywatch.detector.adapters.kafka.broker import EmbeddedBroker
from tests.image.container import ContainerEngine
from tests.ports import free_port
from tests.storage.databases import temporary_database

pytestmark = [pytest.mark.image, pytest.mark.kafka, pytest.mark.postgres]

#: The demo's trace (`querywatch up --demo`): 30 benign clients, 5 thieves, two hours, half volume.
TRACE = ("--seed", "0", "--benign", "30", "--attackers", "5", "--scale", "0.5", "--hours", "2")
#: Seconds for the whole trace to be scored, for serve to be ready: failure, not speed, limits.
SCORED_DEADLINE_S = 300.0
READY_DEADLINE_S = 120.0

# Run in the image: store the demo's reference profile (so no warm-up period is needed).
PROFILE = (
    "import sys; from querywatch.detector.config import DetectionSettings; "
    "from querywatch.detector.adapters.files import DirectoryProfileStore; "
    "from querywatch.detector.simulate.demo import reference_profile; "
    "DirectoryProfileStore(sys.argv[1]).put(reference_profile(DetectionSettings()))"
)


def _shared_dir(path: Path) -> Path:
    """A host directory the container's user (10001) may write."""
    path.mkdir()
    path.chmod(0o777)
    return path


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment of every container: a fresh PostgreSQL database and a broker on the host."""
    with temporary_database("postgres", tmp_path) as url, EmbeddedBroker() as broker:
        yield {
            "QUERYWATCH_DATABASE__URL": url,
            "QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "QUERYWATCH_API__PORT": str(free_port()),
            "QUERYWATCH_DETECTION__PROFILE_DIR": "/profiles",
        }


def _families(text: str) -> dict[str, list[float]]:
    return {f.name: [s.value for s in f.samples] for f in text_string_to_metric_families(text)}


def _metrics(url: str, headers: dict[str, str] | None = None) -> dict[str, list[float]]:
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return _families(response.text)


def _ready(engine: ContainerEngine, name: str, api: str) -> None:
    """Wait until serve's /readyz answers 200."""
    started = time.monotonic()
    while True:
        assert engine.running(name), engine.logs(name)
        try:
            if httpx.get(f"{api}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() - started < READY_DEADLINE_S, engine.logs(name)
        time.sleep(0.05)


def test_processes_detect_the_thieves_and_stop_cleanly(
    engine: ContainerEngine, services: dict[str, str], tmp_path: Path, figures: dict[str, str]
) -> None:
    env, profiles, out = services, _shared_dir(tmp_path / "profiles"), _shared_dir(tmp_path / "out")
    done = engine.run("-c", PROFILE, "/profiles", entrypoint="python", mounts=[f"{profiles}:/profiles"])
    assert done.returncode == 0, done.stderr
    migrate = engine.run("db", "upgrade", env=env)
    assert migrate.returncode == 0, migrate.stderr
    created = engine.run("apikey", "create", "--role", "admin", "--name", "image-test", env=env)
    assert created.returncode == 0, created.stderr
    headers = {"X-API-Key": created.stdout.splitlines()[0].strip()}
    api = f"http://127.0.0.1:{env['QUERYWATCH_API__PORT']}"

    started = time.monotonic()
    serve = engine.start("serve", env=env)
    _ready(engine, serve, api)
    figures["serve: container start to /readyz"] = f"{time.monotonic() - started:.1f} s (target ≤ 10 s)"
    ports = {"consume": free_port(), "dispatch": free_port()}
    workers = {
        command: engine.start(
            command, "--metrics-port", str(port), env=env, mounts=[f"{profiles}:/profiles:ro"]
        )
        for command, port in ports.items()
    }
    simulated = engine.run("simulate", *TRACE, "--truth", "/out/truth.json", env=env, mounts=[f"{out}:/out"])
    assert simulated.returncode == 0, simulated.stderr
    produced = re.search(r"produced (\d+) events", simulated.stderr)
    assert produced, simulated.stderr
    events = int(produced.group(1))

    truth = json.loads((out / "truth.json").read_text())
    thieves = {client for client, info in truth.items() if info["role"] == "attack"}
    consumer_url = f"http://127.0.0.1:{ports['consume']}/metrics"
    deadline = time.monotonic() + SCORED_DEADLINE_S
    while True:  # until the whole trace is scored and its alerts are stored (at a checkpoint)
        processed = sum(_metrics(consumer_url).get("querywatch_events_processed", [0]))
        alerts = httpx.get(f"{api}/v1/alerts", params={"limit": 500}, headers=headers, timeout=10).json()
        alerted = {alert["client_id"] for alert in alerts["items"]}
        if processed >= events and alerted >= thieves:
            break
        for name in (serve, *workers.values()):
            assert engine.running(name), engine.logs(name)
        assert time.monotonic() < deadline, (processed, events, alerted, engine.logs(workers["consume"]))
        time.sleep(1)
    assert alerted == thieves, {c: truth.get(c) for c in alerted ^ thieves}

    assert httpx.get(f"{api}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{api}/readyz", timeout=5).status_code == 200
    scraped = {
        "serve": _metrics(f"{api}/metrics", headers),
        **{command: _metrics(f"http://127.0.0.1:{port}/metrics") for command, port in ports.items()},
    }
    assert "querywatch_api_request_seconds" in scraped["serve"]
    assert sum(scraped["consume"]["querywatch_alerts_opened"]) >= len(thieves)
    assert "querywatch_webhook_deliveries" in scraped["dispatch"]
    figures["memory (resident) after the trace"] = ", ".join(
        f"{command} {sum(metrics['process_resident_memory_bytes']) / 1e6:.0f} MB"
        for command, metrics in scraped.items()
    )

    for command, name in {"serve": serve, **workers}.items():
        stopping = time.monotonic()
        code = engine.stop(name, grace_s=30)
        assert code == 0, f"{command} exited {code} on SIGTERM: {engine.logs(name)}"
        figures[f"{command}: SIGTERM to exit"] = f"{time.monotonic() - stopping:.1f} s"


def test_numba_cache_on_tmp_and_its_cold_start_cost(
    engine: ContainerEngine, tmp_path: Path, figures: dict[str, str]
) -> None:
    """The same small replay with an empty numba cache, then with the one it left in /tmp."""
    shared = _shared_dir(tmp_path / "tmp")
    mounts = [f"{shared}:/tmp"]  # instead of a tmpfs: it outlives each container
    done = engine.run("-c", PROFILE, "/tmp/profiles", entrypoint="python", mounts=mounts, read_only=False)
    assert done.returncode == 0, done.stderr
    trace = ("--seed", "1", "--benign", "3", "--attackers", "1", "--hours", "0.5", "--out", "/tmp/t.jsonl")
    assert engine.run("simulate", *trace, mounts=mounts, read_only=False).returncode == 0
    replay = (
        "replay",
        "/tmp/t.jsonl",
        "--report",
        "/tmp/r.json",
        "--profile",
        "/tmp/profiles",
        "--no-progress",
    )
    seconds = []
    for _ in ("cold", "warm"):
        started = time.monotonic()
        done = engine.run(*replay, mounts=mounts, read_only=False)
        seconds.append(time.monotonic() - started)
        assert done.returncode == 0, done.stderr
    assert list((shared / "numba").rglob("*.nbi")), "no numba cache written to NUMBA_CACHE_DIR"
    figures["numba cache"] = (
        f"a small replay takes {seconds[0]:.1f} s with an empty cache, {seconds[1]:.1f} s with a warm one: "
        f"{seconds[0] - seconds[1]:.1f} s of compilation at each cold start"
    )
