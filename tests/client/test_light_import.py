"""The client library runs with the base install only: no engine, no numpy, no web framework.

The subprocess refuses every import of a module that belongs to a distribution outside the
base install's dependencies (read from pyproject.toml), as if only ``pip install
querywatch`` had run, then exercises the library: events, the JSONL sink, the ASGI and
WSGI middlewares, a degraded answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "sklearn", "numba", "river", "scipy", "fastapi", "starlette", "pydantic", "sqlalchemy")

BASE_INSTALL_ONLY = r"""
import importlib.abc, importlib.metadata, io, json, re, sys

base = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in json.loads(sys.argv[1])}
owners = importlib.metadata.packages_distributions()
outside = {top for top, dists in owners.items()
           if top != "querywatch"
           and not any(d.lower().replace("_", "-") in base for d in dists)}

class OnlyTheBaseInstall(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in outside:
            raise ModuleNotFoundError(f"{name} is not in the base install", name=name)
        return None

sys.meta_path.insert(0, OnlyTheBaseInstall())
"""

SCRIPT = (
    BASE_INSTALL_ONLY
    + r"""
import asyncio, random
from querywatch.detector.client import (Emitter, Extractor, JsonlSink, QuerywatchASGI, QuerywatchWSGI,
                                        degrade_prediction)

emitter = Emitter(JsonlSink(sys.argv[2]))

async def model(scope, receive, send):
    await receive()
    body = json.dumps({"predictions": [{"label": 1, "scores": [0.25, 0.75]}]}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})

app = QuerywatchASGI(model, Extractor("m1"), emitter=emitter)
sent = []
async def send(message): sent.append(message)
async def receive(): return {"type": "http.request", "body": b'{"instances": [[0.5, 0.5]]}'}
scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [(b"x-api-key", b"secret")]}
asyncio.run(app(scope, receive, send))

def wsgi_model(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"predictions": [[0.25, 0.75]]}']
wsgi = QuerywatchWSGI(wsgi_model, Extractor("m1"), emitter=emitter)
body = b'{"instances": [[0.5, 0.5]]}'
environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/predict", "HTTP_X_API_KEY": "secret",
           "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
b"".join(wsgi(environ, lambda status, headers, exc=None: None))
degrade_prediction({"label": 1, "scores": [0.2, 0.8]}, "noise", rng=random.Random(0))
emitter.close()
heavy = [m for m in sys.argv[3].split(",") if m in sys.modules]
print(json.dumps({"heavy": heavy, "status": sent[0]["status"]}))
"""
)


def test_the_client_runs_on_the_base_install_and_loads_nothing_heavy(tmp_path: Path) -> None:
    base = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = tmp_path / "events.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(base), str(out), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"heavy": [], "status": 200}
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 2
    assert {e["client_id"] for e in events} == {
        "key_" + __import__("hashlib").sha256(b"secret").hexdigest()[:32]
    }
    assert events[0]["prediction"] == {"label": 1, "scores": [0.25, 0.75]}
    assert events[1]["prediction"] == {"scores": [0.25, 0.75]}


def test_the_base_install_needs_only_kafka_python() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0] for d in project["dependencies"]] == ["kafka-python"]
    server = " ".join(project["optional-dependencies"]["server"])
    for engine_dependency in ("numpy", "scikit-learn", "numba", "river", "fastapi", "sqlalchemy"):
        assert engine_dependency in server


def test_the_command_on_the_base_install_says_which_install_it_needs() -> None:
    base = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    script = BASE_INSTALL_ONLY + "from querywatch.detector.cli import main; sys.exit(main(['serve']))"
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(base)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "pip install 'querywatch[server]'" in done.stderr
    assert "Traceback" not in done.stderr
