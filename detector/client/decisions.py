"""What querywatch says about a client, asked over HTTP and cached for the request path.

The decision comes from querywatch's ``GET /v1/authz`` (its policy decides; this module only
reads the answer). A decision is kept ``ttl`` seconds, so a cached look-up costs a
dictionary read and a ``block`` takes effect within ``ttl``. While querywatch is down a
circuit breaker stops asking for ``open_seconds`` after ``failures`` failures in a row; in
the meantime a client's last known decision is used if there is one, else the fallback:
``allow`` when failing open (the default: detection is a second line of defence, the model
keeps serving) or ``block`` when failing closed.

Only an unreachable or failing querywatch counts toward the breaker. A client id that
querywatch refuses (a 4xx: too long, a control character) gets the fallback alone: counted,
it let anyone who picks such ids hold every client's new blocks off. A key querywatch does
not accept (401, 403) is a configuration error, said in the log at least once a minute.
"""

from __future__ import annotations

import http.client
import logging
import queue
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger("querywatch.client")

CLIENT_HEADER = "X-Querywatch-Client"
ACTION_HEADER = "X-Querywatch-Action"
DEGRADE_HEADER = "X-Querywatch-Degrade"
RISK_HEADER = "X-Querywatch-Risk"
#: The longest client id an event may carry (``engine.events.MAX_ID``, which this library,
#: standard library only, does not import): a longer one is refused, so never scored.
MAX_CLIENT_ID = 256


@dataclass(frozen=True)
class Decision:
    action: str  # allow | degrade | block
    output_precision: int | None = None
    risk: float = 0.0
    source: str = "api"  # api | cache | stale | fallback


ALLOW = Decision("allow", source="fallback")
BLOCK = Decision("block", source="fallback")
#: Seconds between two log lines about a key that querywatch refuses.
REFUSED_KEY_EVERY = 60.0


class Refused(Exception):
    """querywatch answered this look-up with a client error: no sign of an outage."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"querywatch answered {status}: {reason}")
        self.status = status


def parse_degrade(value: str | None) -> int | None:
    """``precision=1`` -> 1 (the degrade header's one parameter today).

    >>> parse_degrade("precision=2"), parse_degrade(""), parse_degrade(None)
    (2, None, None)
    """
    for part in (value or "").split(";"):
        name, _, number = part.strip().partition("=")
        if name == "precision" and number.strip().isdigit():
            return int(number)
    return None


def from_gateway(headers: Mapping[str, str]) -> Decision:
    """The decision a trusted gateway attached to the request (after asking ``/v1/authz``).

    Only for a server that is reached through that gateway alone: the gateway must set
    (overwrite) these headers, or a caller could pick its own decision.

    >>> from_gateway({"x-querywatch-action": "degrade", "x-querywatch-degrade": "precision=2"})
    Decision(action='degrade', output_precision=2, risk=0.0, source='gateway')
    >>> from_gateway({}).action
    'allow'
    """
    action = headers.get(ACTION_HEADER.lower(), "allow")
    if action not in ("allow", "degrade", "block"):
        action = "allow"
    return Decision(action, parse_degrade(headers.get(DEGRADE_HEADER.lower())), source="gateway")


class DecisionClient:
    """Cached, breaker-guarded decisions from the querywatch API at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        ttl: float = 5.0,
        timeout: float = 0.25,
        fail_open: bool = True,
        failures: int = 3,
        open_seconds: float = 10.0,
        capacity: int = 100_000,
        refresh_ahead: float = 0.2,
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        if not api_key:  # every look-up would be a 401, and every decision the fallback
            raise ValueError("api_key is empty: give a querywatch reader key")
        if timeout <= 0 or ttl < 0 or open_seconds < 0 or failures < 1 or capacity < 1:
            raise ValueError("timeout must be > 0, ttl and open_seconds >= 0, failures and capacity >= 1")
        if not 0 <= refresh_ahead <= 1:
            raise ValueError(f"refresh_ahead is a share of ttl, in [0, 1], not {refresh_ahead}")
        self._url = url
        self._path = url.path.rstrip("/") + "/v1/authz"
        self.api_key = api_key
        self.ttl = ttl
        self.timeout = timeout
        self.fallback = ALLOW if fail_open else BLOCK
        self.failures = failures
        self.open_seconds = open_seconds
        self.capacity = capacity
        self.refresh_window = ttl * refresh_ahead
        self._cache: dict[str, tuple[float, Decision]] = {}
        self._refreshing: set[str] = set()
        self._refresh_queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._refresher: threading.Thread | None = None
        self._failed = 0
        self._open_until = 0.0
        self._local = threading.local()
        self._key_said = -REFUSED_KEY_EVERY
        self.counts = {"hit": 0, "miss": 0, "refresh": 0, "error": 0, "fallback": 0, "refused": 0}

    def cached(self, client_id: str) -> Decision | None:
        """The decision if one younger than ``ttl`` is cached (no I/O), else None.

        In the last ``refresh_ahead`` share of its life an entry is also queued for a
        refresh on a background thread, so a client that keeps sending never waits for a
        look-up, and a new decision still applies within ``ttl``.
        """
        entry = self._cache.get(client_id)
        if entry is None:
            return None
        now = time.monotonic()
        if entry[0] <= now:
            return None
        if entry[0] - now < self.refresh_window and client_id not in self._refreshing:
            self._refresh_soon(client_id)
        self.counts["hit"] += 1
        return entry[1]

    def get(self, client_id: str) -> Decision:
        """The cached decision, or ask querywatch (blocking, at most ``timeout`` seconds). Never raises."""
        hit = self.cached(client_id)
        if hit is not None:
            return hit
        self.counts["miss"] += 1
        return self._fetch(client_id)

    def _refresh_soon(self, client_id: str) -> None:
        self._refreshing.add(client_id)
        self._refresh_queue.put(client_id)
        if self._refresher is None:
            self._refresher = threading.Thread(target=self._refresh, name="querywatch-decisions", daemon=True)
            self._refresher.start()

    def _refresh(self) -> None:
        while True:
            client_id = self._refresh_queue.get()
            try:
                self.counts["refresh"] += 1
                self._fetch(client_id)
            finally:
                self._refreshing.discard(client_id)

    def _fetch(self, client_id: str) -> Decision:
        now = time.monotonic()
        if now < self._open_until:
            return self._fallback(client_id)
        try:
            decision = self._ask(client_id)
        except Refused as exc:
            self.counts["refused"] += 1
            if exc.status in (401, 403) and now - self._key_said >= REFUSED_KEY_EVERY:
                self._key_said = now
                log.error(
                    "querywatch refuses this DecisionClient's api_key (%s): no decision is enforced", exc
                )
            return self._fallback(client_id)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.counts["error"] += 1
            self._failed += 1
            if self._failed >= self.failures:
                if self._open_until <= now:
                    log.warning(
                        "querywatch decisions unavailable (%s); breaker open %s s", exc, self.open_seconds
                    )
                self._open_until = now + self.open_seconds
            return self._fallback(client_id)
        self._failed = 0
        if len(self._cache) >= self.capacity:
            self._cache.pop(next(iter(self._cache)))
        self._cache[client_id] = (
            time.monotonic() + self.ttl,
            Decision(**{**decision.__dict__, "source": "cache"}),
        )
        return decision

    def _fallback(self, client_id: str) -> Decision:
        self.counts["fallback"] += 1
        entry = self._cache.get(client_id)
        if entry is not None:
            return Decision(**{**entry[1].__dict__, "source": "stale"})
        return self.fallback

    def _send(self, client_id: str) -> http.client.HTTPResponse:
        # UTF-8 on the wire (http.client would refuse what Latin-1 cannot hold); /v1/authz reads it so.
        headers: dict[str, bytes | str] = {
            CLIENT_HEADER: client_id.encode("utf-8", "surrogatepass"),
            "X-API-Key": self.api_key,
        }
        if not client_id.isprintable() or len(client_id) > MAX_CLIENT_ID:
            raise Refused(400, "no event names such a client (a control character, or too long)")
        conn = self._connection()
        try:
            conn.request("GET", self._path, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            conn.close()  # a closed keep-alive connection or a dead server: a new one next time
            self._local.conn = None
            raise
        return response

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            factory = (
                http.client.HTTPSConnection if self._url.scheme == "https" else http.client.HTTPConnection
            )
            conn = factory(self._url.hostname or "", self._url.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _ask(self, client_id: str) -> Decision:
        """One look-up. A kept-alive connection the server has since closed (it closes idle
        ones: uvicorn after 5 s) fails before any answer; that is no outage, so the look-up
        is sent once more on a new connection. Counted as an error, it answered from the
        stale cache (a new block missed) and opened the breaker on a busy tier."""
        reused = getattr(self._local, "conn", None) is not None
        try:
            response = self._send(client_id)
        except (ConnectionResetError, BrokenPipeError, http.client.BadStatusLine):
            if not reused:
                raise
            response = self._send(client_id)
        action = response.getheader(ACTION_HEADER)
        if 400 <= response.status < 500 and action is None:
            raise Refused(response.status, response.reason)
        if action not in ("allow", "degrade", "block"):
            raise ValueError(f"querywatch answered {response.status} without a decision")
        risk = float(response.getheader(RISK_HEADER) or 0.0)
        return Decision(action, parse_degrade(response.getheader(DEGRADE_HEADER)), risk)
