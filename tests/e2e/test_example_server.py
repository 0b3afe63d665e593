"""The example model server end to end, everything real: its middleware ships events to the
broker (tansu), querywatch's consumer scores them against the shipped reference profile, the
API decides, and the middleware enforces. A thief's answers go from full to degraded to
refused; benign users' answers never change."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from examples.model_server.server import answer, create_app, train
from querywatch.detector.adapters.kafka.broker import EmbeddedBroker
from querywatch.detector.client import DecisionClient, Emitter, KafkaSink, client_id_for_key
from querywatch.detector.config import DetectionSettings, KafkaSettings
from tests.api.server import running_api
from tests.client.servers import serve_asgi
from tests.kafka.harness import ThreadedConsumer
from tests.storage.databases import migrated_database, settings_for

PROFILES = Path(__file__).resolve().parents[2] / "examples" / "model_server" / "profiles"
WAIT_S = 120.0
TTL = 0.1

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def kind_of(response: httpx.Response, expected: list[dict[str, object]]) -> str:
    """full (the model's own answer), degraded (same labels, rounded scores) or blocked."""
    if response.status_code == 403:
        return "blocked"
    got = response.json()["predictions"]
    if got == expected:
        return "full"
    assert [p["label"] for p in got] == [p["label"] for p in expected]
    assert all(s == round(s, 1) for p in got for s in p["scores"])
    return "degraded"


def test_thieves_are_logged_detected_degraded_then_blocked_and_benign_users_untouched(tmp_path: Path) -> None:
    data, _ = load_digits(return_X_y=True)
    natural = data / 16.0
    model = train()
    rng = np.random.default_rng(7)
    with EmbeddedBroker() as broker, migrated_database("sqlite", tmp_path) as base:
        kafka = KafkaSettings(
            bootstrap_servers=broker.bootstrap_servers,
            topic="serving-e2e",
            group_id="serving-e2e",
            partitions=2,
            session_timeout_ms=6000,
            checkpoint_every_seconds=0.2,
        )
        settings = settings_for(
            base.database.url, kafka=kafka, detection=DetectionSettings(profile_dir=str(PROFILES))
        )
        consumer = ThreadedConsumer(settings).start()
        emitter = Emitter(KafkaSink(broker.bootstrap_servers, kafka.topic))
        try:
            with running_api(settings) as api:
                decisions = DecisionClient(api.base_url, api.reader_key, ttl=TTL, timeout=10)
                with serve_asgi(create_app(emitter=emitter, decisions=decisions)) as server:
                    kinds, benign = _traffic(server, api.base_url, api.reader_headers, model, natural, rng)
                    metrics = httpx.get(f"{server}/metrics").text
                thief = httpx.get(
                    f"{api.base_url}/v1/clients/{client_id_for_key('sk-thief')}", headers=api.reader_headers
                ).json()
                users = httpx.get(f"{api.base_url}/v1/clients", headers=api.reader_headers).json()["items"]
        finally:
            emitter.close()
            consumer.close()
    assert emitter.stats()["dropped"] == dict.fromkeys(emitter.stats()["dropped"], 0)
    # the thief: full answers first, then degraded ones, then refused, in that order
    stages = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    assert stages == ["full", "degraded", "blocked"], stages
    assert benign == {"full"}
    assert 'querywatch_client_requests_total{outcome="blocked"} 3' in metrics
    assert 'querywatch_client_events_dropped_total{reason="buffer_full"} 0' in metrics
    assert thief["risk"] >= 0.9 and any("outside" in reason for reason in thief["reasons"])
    others = [u for u in users if u["client_id"] != thief["client_id"]]
    assert len(others) == 3 and all(u["risk"] < 0.5 for u in others)


def _traffic(
    server: str,
    querywatch: str,
    reader: dict[str, str],
    model: object,
    natural: np.ndarray,
    rng: np.random.Generator,
) -> tuple[list[str], set[str]]:
    """Interleave a random-input thief (one row a request) with three benign users of natural
    digits, until the thief is refused three times in a row.

    The thief sends its next request once querywatch has stored the risk of its previous
    one (and the decision cache has expired), so each answer reflects exactly the queries
    before it and the stages do not depend on the machine's speed.
    """
    kinds: list[str] = []
    benign: set[str] = set()
    thief = client_id_for_key("sk-thief")
    deadline = time.monotonic() + WAIT_S
    with httpx.Client(base_url=server, timeout=10) as http, httpx.Client(base_url=querywatch) as qw:
        while kinds[-3:] != ["blocked"] * 3:
            rows = rng.uniform(0, 1, size=(1, 64)).round(3).tolist()
            stolen = http.post("/v1/predict", json={"instances": rows}, headers={"X-API-Key": "sk-thief"})
            kinds.append(kind_of(stolen, answer(model, rows)))  # type: ignore[arg-type]
            user = f"sk-user-{len(kinds) % 3}"
            rows = natural[rng.integers(0, len(natural), size=2)].round(3).tolist()
            normal = http.post("/v1/predict", json={"instances": rows}, headers={"X-API-Key": user})
            benign.add(kind_of(normal, answer(model, rows)))  # type: ignore[arg-type]
            logged = sum(kind != "blocked" for kind in kinds)
            while _queries(qw, thief, reader) < logged:
                assert time.monotonic() < deadline, f"querywatch never scored the thief's query {logged}"
                time.sleep(0.05)
            time.sleep(TTL)
    return kinds, benign


def _queries(qw: httpx.Client, client_id: str, reader: dict[str, str]) -> int:
    found = qw.get(f"/v1/clients/{client_id}", headers=reader)
    return int(found.json()["queries"]) if found.status_code == 200 else 0
