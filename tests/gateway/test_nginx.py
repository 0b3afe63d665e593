"""NGINX ``auth_request`` in front of a model server, asking the real querywatch ``/v1/authz``.

Debian's nginx (``apt-get install nginx-light``; CI installs it) runs from a configuration
written here, the same one the README gives: allowed callers reach the model, a degraded
one reaches it with ``X-Querywatch-Degrade`` (which the model server's middleware applies),
a blocked one gets 403 from NGINX, and while querywatch is down the request is let through
(the fail-open variant).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from querywatch.detector.client import Extractor, QuerywatchASGI, client_id_for_key
from tests.api.seed import seed_client
from tests.api.server import ApiServer
from tests.client.servers import model_app, serve_asgi
from tests.ports import free_port, refusing_port

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="needs Debian's nginx (apt-get install nginx-light)")

SITE = """
location /predict {{
    auth_request /_querywatch;
    auth_request_set $qw_action  $upstream_http_x_querywatch_action;
    auth_request_set $qw_degrade $upstream_http_x_querywatch_degrade;
    proxy_set_header X-Querywatch-Action  $qw_action;
    proxy_set_header X-Querywatch-Degrade $qw_degrade;
    proxy_pass http://{model};
}}

location = /_querywatch {{
    internal;
    proxy_pass http://{querywatch}/v1/authz;
    proxy_pass_request_body off;
    proxy_set_header Content-Length "";
    proxy_set_header X-API-Key "{reader_key}";
    proxy_set_header X-Querywatch-Client-Key $http_x_api_key;
    proxy_set_header X-Querywatch-Client "";   # never the caller's own: it would name whom to judge
    proxy_set_header X-Querywatch-Model "two-v1";
    # fail open: querywatch unreachable -> let the request through undegraded
    error_page 500 502 503 504 = @querywatch_down;
}}

location @querywatch_down {{
    return 204;
}}
"""


def nginx_conf(prefix: Path, port: int, site: str) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n".join(f"    {kind}_temp_path {prefix / kind};" for kind in kinds)
    return (
        f"{user}worker_processes 1;\ndaemon off;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n    access_log off;\n{temp}\n"
        f"    server {{\n        listen 127.0.0.1:{port};\n{site}\n    }}\n}}\n"
    )


@contextmanager
def running_nginx(prefix: Path, site: str) -> Iterator[str]:
    assert NGINX is not None
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, port, site))
    process = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf)], stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(base, timeout=0.5)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"nginx did not start: {process.communicate()[1].decode()}") from None
            time.sleep(0.05)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(10)


def _predict(base: str, key: str) -> httpx.Response:
    return httpx.post(f"{base}/predict", json={"instances": [[0.74, 0.1]]}, headers={"X-API-Key": key})


def test_nginx_auth_request_allows_degrades_and_blocks(api: ApiServer, tmp_path: Path) -> None:
    seed_client(api.sessions, client_id_for_key("sk-odd"), 0.7)
    seed_client(api.sessions, client_id_for_key("sk-thief"), 0.95)
    model = QuerywatchASGI(model_app(), Extractor("two-v1"), decisions_from_gateway=True)
    with serve_asgi(model) as model_url:
        site = SITE.format(
            model=model_url.removeprefix("http://"),
            querywatch=api.base_url.removeprefix("http://"),
            reader_key=api.reader_key,
        )
        with running_nginx(tmp_path, site) as gateway:
            calm, odd, thief = (_predict(gateway, key) for key in ("sk-calm", "sk-odd", "sk-thief"))
            disguised = httpx.post(  # the thief names another client: NGINX passed it on, and it won
                f"{gateway}/predict",
                json={"instances": [[0.74, 0.1]]},
                headers={"X-API-Key": "sk-thief", "X-Querywatch-Client": "someone-calm"},
            )
    assert disguised.status_code == 403
    assert calm.status_code == 200
    assert calm.json()["predictions"] == [{"label": 1, "scores": [0.26, 0.74]}]
    assert odd.status_code == 200
    assert odd.json()["predictions"] == [{"label": 1, "scores": [0.3, 0.7]}]  # precision=1 from the gateway
    assert thief.status_code == 403
    assert model.guard.counts["requests"] == 2  # the thief never reached the model


def test_nginx_fails_open_while_querywatch_is_down(tmp_path: Path) -> None:
    with serve_asgi(model_app()) as model_url, refusing_port() as down:
        site = SITE.format(
            model=model_url.removeprefix("http://"), querywatch=f"127.0.0.1:{down}", reader_key="qw_x"
        )
        with running_nginx(tmp_path, site) as gateway:
            answer = _predict(gateway, "sk-anyone")
    assert answer.status_code == 200
    assert answer.json()["predictions"] == [{"label": 1, "scores": [0.26, 0.74]}]
