"""What the ASGI and WSGI middlewares share: decide, log, degrade — never fail a request.

Every step that could raise (the extractor hook on an odd body, a decision look-up) is
caught here and counted in ``errors``; the model's own answer then goes out unchanged.
Events carry what the model really answered (not the degraded form), so detection keeps
its full view of a client it is already degrading.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Collection, Mapping

from .decisions import Decision, DecisionClient, from_gateway
from .degrade import DEGRADE_MODES, degrade_prediction
from .emitter import Emitter
from .events import build_events, client_ip
from .hooks import Extractor

log = logging.getLogger("querywatch.client")

NO_DECISIONS = Decision("allow", source="none")


def problem_body(status: int, title: str, detail: str) -> bytes:
    return json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()


BLOCKED_BODY = problem_body(
    403, "Forbidden", "this client may not query the model (querywatch decision: block)"
)

PROBLEM_HEADERS = [(b"content-type", b"application/problem+json")]


class Guard:
    """One middleware's configuration and counters."""

    def __init__(
        self,
        extractor: Extractor,
        *,
        emitter: Emitter | None = None,
        decisions: DecisionClient | None = None,
        decisions_from_gateway: bool = False,
        degrade_mode: str = "round",
        noise: float = 0.1,
        trusted_proxy_header: str | None = None,
        trusted_hops: int = 1,
        paths: tuple[str, ...] = ("/",),
        methods: tuple[str, ...] = ("POST",),
    ) -> None:
        if degrade_mode not in DEGRADE_MODES:
            raise ValueError(f"degrade_mode must be one of {', '.join(DEGRADE_MODES)}")
        self.extractor = extractor
        self.emitter = emitter
        if decisions is not None and decisions_from_gateway:
            raise ValueError("take decisions from querywatch or from the gateway, not both")
        self.decisions = decisions
        self.decisions_from_gateway = decisions_from_gateway
        self.degrade_mode = degrade_mode
        self.noise = noise
        self.trusted_proxy_header = trusted_proxy_header
        self.trusted_hops = trusted_hops
        self.paths = paths
        self.methods = methods
        self.rng = random.Random()
        self.counts = {
            "requests": 0,
            "blocked": 0,
            "degraded": 0,
            "unidentified": 0,
            "ambiguous": 0,
            "errors": 0,
        }

    def applies(self, method: str, path: str) -> bool:
        return method in self.methods and path.startswith(self.paths)

    def identify(self, headers: Mapping[str, str]) -> str | None:
        self.counts["requests"] += 1
        try:
            client_id = self.extractor.client_id(headers)
        except Exception:
            self._error("extractor.client_id")
            return None
        if client_id is None:
            self.counts["unidentified"] += 1
        return client_id

    def ambiguous(self, headers: Mapping[str, str], repeated: Collection[str] = ()) -> bytes | None:
        """The 400 body for a request that names two clients (``Extractor.ambiguity``), else
        None. Refused rather than guessed: whichever copy the guard judged, the caller picks
        the other for the app, and a blocked client is served as someone else."""
        try:
            why = self.extractor.ambiguity(headers, repeated)
        except Exception:
            self._error("extractor.ambiguity")
            return None
        if why is None:
            return None
        self.counts["ambiguous"] += 1
        return problem_body(400, "Bad Request", f"the request names more than one client: {why}")

    def cached_decision(self, client_id: str, headers: Mapping[str, str]) -> Decision | None:
        """The decision without I/O: the gateway's, cached, or allow when there is no source; None: ask."""
        if self.decisions_from_gateway:
            return from_gateway(headers)
        if self.decisions is None:
            return NO_DECISIONS
        return self.decisions.cached(client_id)

    def decision(self, client_id: str) -> Decision:
        """Blocking look-up (cache miss); never raises."""
        assert self.decisions is not None
        return self.decisions.get(client_id)

    def refuse(self) -> bytes:
        self.counts["blocked"] += 1
        return BLOCKED_BODY

    def answer(
        self,
        *,
        client_id: str,
        decision: Decision,
        headers: Mapping[str, str],
        peer: str | None,
        path: str,
        received: float,
        request_body: bytes,
        response_body: bytes,
    ) -> bytes | None:
        """Log the exchange's events; return the degraded body, or None to send the original."""
        try:
            request = json.loads(request_body)
            response = json.loads(response_body)
            rows = self.extractor.rows(request, response)
            if self.emitter is not None and rows:
                meta = {
                    "ip": client_ip(
                        headers,
                        peer,
                        trusted_header=self.trusted_proxy_header,
                        trusted_hops=self.trusted_hops,
                    ),
                    "user_agent": headers.get("user-agent"),
                    "org": self.extractor.org(headers),
                }
                self.emitter.emit(
                    build_events(
                        request_id=headers.get("x-request-id") or uuid.uuid4().hex,
                        ts=received,
                        client_id=client_id,
                        model_id=self.extractor.model(path, request),
                        rows=rows,
                        meta=meta,
                    )
                )
            if decision.action != "degrade":
                return None
            degraded = self.extractor.degrade(
                response,
                lambda p: degrade_prediction(
                    p, self.degrade_mode, precision=decision.output_precision, noise=self.noise, rng=self.rng
                ),
            )
            self.counts["degraded"] += 1
            return json.dumps(degraded, separators=(",", ":")).encode()
        except Exception:
            self._error("extractor")
            return None

    def _error(self, where: str) -> None:
        self.counts["errors"] += 1
        if self.counts["errors"] in (1, 10, 100, 1000) or self.counts["errors"] % 10_000 == 0:
            log.warning(
                "querywatch middleware: %s failed (%d errors so far)",
                where,
                self.counts["errors"],
                exc_info=True,
            )


def now() -> float:
    """Epoch seconds: the event's ``ts``, when the serving tier received the request."""
    return time.time()
