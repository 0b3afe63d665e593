"""How the dashboard behaves with 100,000 tracked clients: prints figures, asserts nothing
about speed (the tests check behaviour; this shows numbers).

    python benchmarks/bench_ui.py [--clients 100000] [--database-url URL] [--no-browser]

It stores the clients through the real ``store_outcomes`` (in consumer-sized batches),
serves the real API + dashboard with uvicorn on a loopback port, then times
* the JSON calls the dashboard makes (leaderboard page 1, page 20 via the keyset cursor,
  filtered pages, models, one client's page), and
* in Debian's headless chromium (if installed): sign-in to a rendered leaderboard, the next
  page, and a client page with its plots drawn — and counts the rows the page holds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from querywatch.detector.adapters.api.app import create_app
from querywatch.detector.adapters.db.apikeys import create_api_key
from querywatch.detector.adapters.db.migrate import upgrade
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.sinks import store_outcomes
from querywatch.detector.config import DatabaseSettings, Settings
from querywatch.detector.engine.outcomes import RiskUpdate

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
BATCH = 5000
MODELS = ("digits-v1", "digits-v2", "fraud-v3")
START = 1_790_000_000.0


class _Outcome:
    __slots__ = ("alert", "closed_alert_id", "update")

    def __init__(self, update: RiskUpdate) -> None:
        self.update, self.alert, self.closed_alert_id = update, None, None


def seed(settings: Settings, clients: int) -> tuple[float, str]:
    """Store ``clients`` clients with spread-out risks; returns (seconds, the riskiest id)."""
    engine = make_engine(settings.database)
    sessions = make_sessionmaker(engine)
    features = {"coverage_ratio": 1.0, "ood_share": 0.02, "distance_stat": 0.4, "class_entropy": 2.9}
    started = time.perf_counter()
    for first in range(0, clients, BATCH):
        batch = []
        for i in range(first, min(first + BATCH, clients)):
            risk = round(((i * 7919) % clients) / clients, 6)
            batch.append(
                _Outcome(
                    RiskUpdate(f"acct-{i:07d}", MODELS[i % 3], START + i, 10 + i % 500, risk, (), features)
                )
            )
        with transaction(sessions) as session:
            store_outcomes(session=session, outcomes=batch)
    seconds = time.perf_counter() - started
    engine.dispose()
    top = max(range(clients), key=lambda i: ((i * 7919) % clients, -i))
    return seconds, f"acct-{top:07d}"


@contextmanager
def serve(settings: Settings) -> Iterator[tuple[str, str]]:
    engine = make_engine(settings.database)
    with transaction(make_sessionmaker(engine)) as session:
        key = create_api_key(session=session, role="reader", name="bench").secret
    engine.dispose()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        server.should_exit = True
        thread.join(10)


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and max milliseconds of ``repeat`` calls (after one warm-up call)."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def bench_api(base: str, key: str, top: str, repeat: int) -> None:
    http = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30)

    def page(**params: str | float) -> dict[str, Any]:
        response = http.get("/v1/clients", params={"limit": 50, **params})
        response.raise_for_status()
        return dict(response.json())

    first = page()
    rows = first["items"]
    print(f"  leaderboard page 1: {len(rows)} rows (of the whole table), top = {rows[0]['client_id']}")
    cursor = first["next_cursor"]
    for _ in range(19):
        cursor = page(cursor=cursor)["next_cursor"]
    cases: list[tuple[str, Callable[[], object]]] = [
        ("GET /v1/clients?limit=50 (page 1)", lambda: page()),
        ("GET /v1/clients (page 20, keyset cursor)", lambda: page(cursor=cursor)),
        ("GET /v1/clients?model=digits-v2&min_risk=0.9", lambda: page(model="digits-v2", min_risk=0.9)),
        ("GET /v1/clients?status=blocked (no match)", lambda: page(status="blocked")),
        ("GET /v1/models (dashboard filter list)", lambda: http.get("/v1/models").raise_for_status()),
        ("GET /v1/clients/{id}", lambda: http.get(f"/v1/clients/{top}").raise_for_status()),
        ("GET /v1/clients/{id}/history", lambda: http.get(f"/v1/clients/{top}/history").raise_for_status()),
        ("GET /v1/alerts?client_id=…", lambda: http.get(f"/v1/alerts?client_id={top}").raise_for_status()),
        ("GET /v1/ui/config", lambda: http.get("/v1/ui/config").raise_for_status()),
    ]  # fmt: skip
    for label, call in cases:
        median, worst = timed(call, repeat)
        print(f"  {label:<48} median {median:7.2f} ms   max {worst:7.2f} ms")
    http.close()


def bench_browser(base: str, key: str, top: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        rows = "#leaderboard tbody tr[data-client-id]"
        page.goto(f"{base}/ui/")
        started = time.perf_counter()
        page.fill("#api-key", key)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector(rows)
        print(f"  sign-in → leaderboard rendered: {(time.perf_counter() - started) * 1000:7.1f} ms")
        print(f"  rows in the page's DOM: {page.locator(rows).count()} (of the whole table)")
        started = time.perf_counter()
        page.click("#next-page")
        page.wait_for_selector(".pager .page:text-is('Page 2')")
        page.locator(f"{rows} .rank").first.wait_for()
        print(f"  next page rendered:              {(time.perf_counter() - started) * 1000:7.1f} ms")
        started = time.perf_counter()
        page.goto(f"{base}/ui/#/client/{top}")
        page.wait_for_selector("#chart-coverage_ratio canvas")
        print(f"  client page with plots drawn:    {(time.perf_counter() - started) * 1000:7.1f} ms")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings.model_validate({"database": DatabaseSettings.model_validate({"url": url})})
        upgrade(settings)
        seconds, top = seed(settings, args.clients)
        print(f"querywatch dashboard with {args.clients:,} clients on {url.split(':')[0]}")
        print(f"  stored through store_outcomes in {seconds:.1f} s ({args.clients / seconds:,.0f} clients/s)")
        with serve(settings) as (base, key):
            bench_api(base, key, top, args.repeat)
            if args.no_browser or not CHROMIUM.exists():
                print("  (browser part skipped: --no-browser or no /usr/bin/chromium)")
            else:
                bench_browser(base, key, top)


if __name__ == "__main__":
    main()
