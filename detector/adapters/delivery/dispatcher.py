"""Send due webhook deliveries: sign, pin to a checked address, POST, then settle the row.

A running dispatcher (``run_forever``) keeps up to ``batch_size`` deliveries in flight, at
most ``per_endpoint`` to one endpoint, each claimed under a lease and bounded by
``timeout_seconds`` in total (not per network read, so the lease really covers it); results
are recorded as they come in, so one slow receiver never holds up the others. ``run_once``
sends one batch and records it in one short transaction. A 2xx is recorded only
after it arrived; if the process dies between the receiver's 2xx and that commit, the row
comes back after the lease and is sent again with the same ``webhook-id``, which receivers
use to drop the duplicate. Clock, sleep, random source, DNS resolver and HTTP transport are
injectable so tests can drive time and failures by hand.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx

from querywatch.detector.adapters.db.notices import make_due_digests
from querywatch.detector.adapters.db.outbox import (
    ClaimedDelivery,
    backlog,
    claim_due_deliveries,
    disable_endpoint,
    settle_delivery,
)
from querywatch.detector.adapters.db.session import DATABASE_ERRORS, DatabaseError, Session, SessionFactory
from querywatch.detector.adapters.delivery.backoff import parse_retry_after, retry_delay
from querywatch.detector.adapters.delivery.payload import render
from querywatch.detector.adapters.delivery.signing import signed_headers
from querywatch.detector.adapters.delivery.ssrf import (
    Resolver,
    UnsafeWebhookUrl,
    pin_webhook_url,
    system_resolver,
)
from querywatch.detector.adapters.kafka.outages import Outage
from querywatch.detector.config import Settings
from querywatch.detector.metrics import WEBHOOK_BACKLOG, WEBHOOK_DELIVERIES

log = logging.getLogger(__name__)
_T = TypeVar("_T")
#: How often a dispatcher looks for monitor-mode digests to make (each is made once a day).
_DIGEST_CHECK = timedelta(minutes=1)

#: Bytes of a receiver's answer kept in ``last_error``.
_ERROR_BODY_BYTES = 500
#: ``last_error`` prefix of an attempt the SSRF guard stopped before connecting.
REFUSED = "refused: "


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one HTTP attempt came to: a status (None if no answer) and why it failed."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Dispatcher:
    """Delivers the webhook outbox; several may run against one database at once."""

    def __init__(
        self,
        settings: Settings,
        sessions: SessionFactory,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        resolver: Resolver = system_resolver,
        make_transport: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        """``make_transport`` builds an HTTP transport (e.g. one trusting a private CA);
        ``run_once`` and ``run_forever`` each make a fresh one, as each runs its own event loop."""
        self.settings = settings.webhooks
        self.public_url = settings.api.public_url
        self.sessions = sessions
        self.clock = clock
        self.rng = rng or random.Random()
        self.resolver = resolver
        self.make_transport = make_transport
        # Name lookups run here rather than in asyncio's default pool, which asyncio.run()
        # waits for: a lookup that hangs past the timeout must not hold up the batch.
        self._resolving = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook-dns")
        self._digests_checked_at: datetime | None = None
        #: Outcomes recorded so far, by label (``--once`` sums them up for the operator).
        self.outcomes: Counter[str] = Counter()
        #: The database away: said once, reminded, said back (the dispatcher polls on regardless).
        self._outage = Outage(clock=clock, waiting="deliveries wait", resumed="deliveries resume")

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    def run_once(self) -> int:
        """Claim one batch of due deliveries, send it and record the results; return how
        many were attempted."""
        return asyncio.run(self._run_once())

    async def _run_once(self) -> int:
        async with self._client() as client:
            claims = await asyncio.to_thread(self._claim, self.settings.batch_size, {})
            results = await asyncio.gather(*(self._send_one(client, claim) for claim in claims))
        if claims:
            await asyncio.to_thread(self._settle_all, list(zip(claims, results, strict=True)))
        return len(claims)

    def run_forever(self, stop_event: threading.Event) -> None:
        """Deliver until ``stop_event`` is set, then finish what is in flight. Blocking (it
        runs its own event loop): call it from a thread of its own, not from async code."""
        asyncio.run(self._serve(stop_event))

    async def _serve(self, stop_event: threading.Event) -> None:
        """Keep up to ``batch_size`` deliveries in flight, at most ``per_endpoint`` to one
        endpoint, and record each result as soon as it is in: a slow receiver holds its own
        slots and nobody else's. A failing claim or record (e.g. database down) is logged
        and retried after ``poll_seconds``, never fatal."""
        poll = self.settings.poll_seconds
        sending: dict[asyncio.Task[AttemptResult], ClaimedDelivery] = {}
        async with self._client() as client:
            while sending or not stop_event.is_set():
                done = [task for task in sending if task.done()]
                if done:
                    results = [(sending.pop(task), task.result()) for task in done]
                    await self._guarded(self._settle_all, results)
                if not stop_event.is_set():
                    in_flight = Counter(claim.endpoint_id for claim in sending.values())
                    room = self.settings.batch_size - len(sending)
                    claims = await self._guarded(self._claim, room, in_flight) if room > 0 else []
                    for claim in claims or ():
                        sending[asyncio.create_task(self._send_one(client, claim))] = claim
                if sending:
                    await asyncio.wait(sending, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
                elif not stop_event.is_set():
                    await asyncio.to_thread(stop_event.wait, poll)

    async def _guarded(self, step: Callable[..., _T], *args: object) -> _T | None:
        """Run a database step in a worker thread; log its failure instead of raising. The
        database away is an outage (``kafka.outages.Outage``: one line when it goes, one a
        minute, one when it is back, and ``querywatch_outage``; it was a traceback a second);
        any other failure keeps its traceback."""
        try:
            result = await asyncio.to_thread(step, *args)
        except DATABASE_ERRORS as exc:
            self._outage.failed(exc)
            return None
        except Exception:
            log.exception("webhook dispatch step %s failed; retrying", step.__name__)
            return None
        self._outage.recovered()
        return result

    def _claim(self, limit: int, in_flight: Mapping[int, int]) -> list[ClaimedDelivery]:
        now = self._now()
        lease = timedelta(seconds=self.settings.timeout_seconds + self.settings.lease_margin_seconds)
        if self._digests_checked_at is None or now - self._digests_checked_at >= _DIGEST_CHECK:
            with self.sessions() as session, session.begin():
                for notice in make_due_digests(session=session, now=now):
                    log.info("monitor-mode digest %s queued", notice.key)
            self._digests_checked_at = now
        with self.sessions() as session, session.begin():
            claims = claim_due_deliveries(
                session=session,
                now=now,
                lease_until=now + lease,
                limit=limit,
                max_attempts=len(self.settings.retry_schedule) + 1,
                per_endpoint=self.settings.per_endpoint,
                in_flight=in_flight,
            )
            WEBHOOK_BACKLOG.set(backlog(session=session))
        return claims

    def _client(self) -> httpx.AsyncClient:
        """The HTTP client of one event loop (a transport cannot outlive its loop)."""
        return httpx.AsyncClient(
            transport=self.make_transport() if self.make_transport else None,
            proxy=self.settings.proxy_url,  # an egress proxy, if the network has one
            timeout=self.settings.timeout_seconds,
            follow_redirects=False,
            trust_env=False,
        )

    async def _send_one(self, client: httpx.AsyncClient, claim: ClaimedDelivery) -> AttemptResult:
        """One attempt, bounded as a whole (name resolution included) by ``timeout_seconds``,
        so that it always ends inside the claim's lease."""
        timeout = self.settings.timeout_seconds
        try:
            return await asyncio.wait_for(self._attempt(client, claim), timeout)
        except TimeoutError:
            return AttemptResult(status=None, error=f"timed out after {timeout:g}s")
        except httpx.HTTPError as exc:
            return AttemptResult(status=None, error=f"{type(exc).__name__}: {exc}"[:500])
        except Exception as exc:  # recorded on the delivery and retried, never fatal to the batch
            log.exception("unexpected error sending webhook %s", claim.webhook_id)
            return AttemptResult(status=None, error=f"unexpected {type(exc).__name__}: {exc}"[:500])

    async def _attempt(self, client: httpx.AsyncClient, claim: ClaimedDelivery) -> AttemptResult:
        try:
            target = await asyncio.get_running_loop().run_in_executor(
                self._resolving,
                functools.partial(
                    pin_webhook_url, claim.url, allow_hosts=self.settings.allow_hosts, resolver=self.resolver
                ),
            )
        except UnsafeWebhookUrl as exc:
            return AttemptResult(status=None, error=f"{REFUSED}{exc}")
        body = render(
            kind=claim.kind, event=claim.event, public_url=self.public_url, routing_key=claim.routing_key
        )
        headers = signed_headers(
            secret=claim.secret,
            webhook_id=claim.webhook_id,
            timestamp=self.clock(),
            body=body,
            also=() if claim.previous_secret is None else (claim.previous_secret,),
        )
        headers["host"] = target.host_header
        headers["user-agent"] = "querywatch-webhooks/1"
        extensions = {"sni_hostname": target.host} if target.url.startswith("https:") else {}
        request = client.build_request(
            "POST", target.pinned_url, content=body, headers=headers, extensions=extensions
        )
        return await self._exchange(client, request)

    async def _exchange(self, client: httpx.AsyncClient, request: httpx.Request) -> AttemptResult:
        response = await client.send(request, stream=True)
        try:
            if 200 <= response.status_code < 300:
                return AttemptResult(status=response.status_code)
            snippet = b""
            async for chunk in response.aiter_bytes():
                snippet += chunk
                if len(snippet) >= _ERROR_BODY_BYTES:
                    break
            text = snippet[:_ERROR_BODY_BYTES].decode("utf-8", "replace").strip()
            return AttemptResult(
                status=response.status_code,
                error=f"HTTP {response.status_code}" + (f": {text}" if text else ""),
                retry_after=parse_retry_after(response.headers.get("retry-after"), now=self.clock()),
            )
        finally:
            await response.aclose()

    def _settle_all(self, attempts: list[tuple[ClaimedDelivery, AttemptResult]]) -> None:
        """Record a batch in one transaction; if that fails, one by one, so that a single
        bad row cannot keep the others from being recorded. A result that cannot be
        recorded is retried after the lease (same ``webhook-id``)."""
        now = self._now()
        try:
            with self.sessions() as session, session.begin():
                outcomes = [self._record(session, claim, result, now) for claim, result in attempts]
        except DatabaseError:
            log.exception("could not record %d webhook results at once; recording one by one", len(attempts))
            outcomes = []
            for claim, result in attempts:
                try:
                    with self.sessions() as session, session.begin():
                        outcomes.append(self._record(session, claim, result, now))
                except DatabaseError:
                    log.exception("could not record webhook %s; it will be sent again", claim.webhook_id)
                    outcomes.append("unrecorded")
        for (claim, result), outcome in zip(attempts, outcomes, strict=True):
            WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
            self.outcomes[outcome] += 1
            log.log(
                logging.INFO if outcome in ("delivered", "retry") else logging.WARNING,
                "webhook %s to endpoint %s attempt %d: %s (%s)",
                claim.webhook_id,
                claim.endpoint_id,
                claim.attempts,
                outcome,
                (result.error or "").removeprefix(REFUSED) or result.status,
            )

    def _record(self, session: Session, claim: ClaimedDelivery, result: AttemptResult, now: datetime) -> str:
        """Write one attempt's result; return its outcome label."""
        if result.ok:
            kept = settle_delivery(
                session=session,
                claim=claim,
                state="delivered",
                status=result.status,
                error=None,
                next_attempt_at=None,
                delivered_at=now,
            )
            outcome = "delivered"
        elif result.status == 400 and claim.kind == "pagerduty":  # an invalid event: retrying cannot help
            kept = settle_delivery(
                session=session,
                claim=claim,
                state="dead",
                status=400,
                error=result.error,
                next_attempt_at=None,
            )
            outcome = "dead"
        elif result.status == 410:  # the endpoint is paused; this delivery waits with the rest
            disable_endpoint(
                session=session, endpoint_id=claim.endpoint_id, reason=f"410 Gone at {now.isoformat()}"
            )
            kept = settle_delivery(
                session=session,
                claim=claim,
                state="failed",
                status=410,
                error=result.error,
                next_attempt_at=now,
            )
            outcome = "gone"
        else:
            delay = retry_delay(
                attempts=claim.attempts,
                schedule=self.settings.retry_schedule,
                jitter=self.settings.jitter,
                rng=self.rng,
            )
            if delay is not None and result.retry_after is not None:
                delay = min(result.retry_after, self.settings.max_retry_after_seconds)
            retry_at = None if delay is None else now + timedelta(seconds=delay)
            kept = settle_delivery(
                session=session,
                claim=claim,
                state="failed" if retry_at else "dead",
                status=result.status,
                error=result.error,
                next_attempt_at=retry_at,
            )
            outcome = "retry" if retry_at else "dead"
        if not kept:
            log.warning("delivery %s changed while it was in flight; its result is dropped", claim.webhook_id)
            return "superseded"
        if result.error is not None and result.error.startswith(REFUSED):
            return "refused"
        return outcome
