"""Offline replay: a JSONL trace through the very engine the consumer runs.

Lines are read and parsed in batches; invalid lines are counted by reason and listed
(never fatal); duplicate request ids are dropped and idle clients evicted as the consumer
does (``stream`` settings: ``dedup_scope``, ``evict_idle``). Past the engine's resident cap
(``residency.max_resident_clients``) the least recently active clients are spilled after a
batch: a replay has no database, so their serialized state (the checkpoint's compressed
bytes, a few hundred bytes to 4 KB instead of 3 to 6 KB of live objects) and their request
ids stay in memory until their next event brings them back. The report gives each client's queries,
peak risk, the 1-based index of the event at which its first alert fired, and reasons;
each alert is reported as of its last event (severity and risk current, ``closed_ts`` set if
it closed), with the count of alert events by type.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, TextIO, cast

from querywatch.detector.config import InputSettings, StreamSettings
from querywatch.detector.engine.campaigns.stage import CampaignStage
from querywatch.detector.engine.detector import BatchResult, Detector
from querywatch.detector.engine.events import (
    Event,
    RecentIds,
    RequestIdFilter,
    forget_id,
    id_list,
    recent_ids,
    remember_id,
)
from querywatch.detector.engine.outcomes import Alert
from querywatch.detector.errors import QuerywatchError
from querywatch.detector.pipeline.lines import open_lines
from querywatch.detector.pipeline.loop import Message, Pipeline, Step
from querywatch.detector.pipeline.outputs import written_whole

BATCH_LINES = 2048
#: A batch also ends at this many bytes, so memory stays bounded whatever the lines' sizes.
BATCH_BYTES = 64 << 20
#: Bytes read at a time from a line longer than the event limit (it is skipped, never held).
_CHUNK = 1 << 20


@dataclass
class RiskTimeline:
    """At most ``size`` (queries, event time, risk) points of one client, thinned evenly as it grows.

    Kept only when asked (``replay --html``): a point every ``stride`` queries, and when the
    list is full every other point goes and the stride doubles, so memory stays bounded.

    >>> line = RiskTimeline(size=4)
    >>> for q in range(1, 11):
    ...     line.add(q, float(q), q / 10)
    >>> [q for q, _, _ in line.points], line.stride
    ([1, 5, 9], 4)
    """

    size: int
    stride: int = 1
    points: list[tuple[int, float, float]] = field(default_factory=list)

    def add(self, queries: int, ts: float, risk: float) -> None:
        if (queries - 1) % self.stride:
            return
        self.points.append((queries, ts, risk))
        if len(self.points) > self.size:
            self.points = self.points[::2]
            self.stride *= 2


@dataclass(slots=True)
class ClientReport:
    client_id: str
    queries: int = 0
    risk: float = 0.0
    first_alert_query: int | None = None
    reasons: tuple[str, ...] = ()
    timeline: RiskTimeline | None = None
    extraction: float | None = None
    last_ts: float = float("-inf")
    """Event time of its latest event (an idle client's extraction is kept at eviction)."""
    evicted: bool = False
    """Its state left memory (evicted or spilled): ``extraction`` is as of then."""
    seen: RecentIds | None = None
    """Its latest request ids, for the dedup (``_Dedup``), not reported: held here rather
    than in a dict of their own, whose entries cost a client 30 to 40 bytes, and with no
    ``RequestIdFilter`` around them (48 more)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "queries": self.queries,
            "risk": round(self.risk, 6),
            "first_alert_query": self.first_alert_query,
            "reasons": list(self.reasons),
            **({} if self.extraction is None else {"extraction": round(self.extraction, 4)}),
        }


@dataclass
class ReplayReport:
    clients: dict[str, ClientReport] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)  # by id, in opening order, as of the last event
    alert_events: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_lines: list[tuple[int, str, str]] = field(default_factory=list)
    refused_clients: dict[str, Counter[str]] = field(default_factory=dict)
    """Each client's refused events by reason (``pipeline.Refusal``): a client whose every
    event is refused has no row in ``clients``, and is seen here."""
    duplicates: int = 0
    events: int = 0
    unscored: int = 0
    """Valid events whose answer carried no scores: labels only, or no answer. A trace whose
    every answer is unscored may name its scores otherwise than ``prediction.scores``."""
    gapped: int = 0
    """Events scored with a missing input value (null or NaN), each read as the nearest profile
    cell's (``ReferenceProfile.filled``): a stream full of gaps is worth knowing about."""
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    summaries: int = 0

    def ranked(self) -> list[ClientReport]:
        """Clients by risk (highest first), then by id. Two stable sorts on the attributes
        themselves: a key tuple per client would cost a million clients 80 MB at the end."""
        clients = sorted(self.clients.values(), key=attrgetter("client_id"))
        clients.sort(key=attrgetter("risk"), reverse=True)
        return clients

    def to_json(self) -> dict[str, Any]:
        return {"clients": [c.to_json() for c in self.ranked()], **self._rest()}

    def _rest(self) -> dict[str, Any]:
        """Everything in the report but its clients."""
        return {
            "alerts": [a.to_dict() for a in self.alerts.values()],
            "alert_events": dict(sorted(self.alert_events.items())),
            "campaigns": self.campaigns,
            "summaries": self.summaries,
            "events": self.events,
            "answers_without_scores": self.unscored,
            "inputs_with_missing_values": self.gapped,
            "duplicates": self.duplicates,
            "rejected": dict(self.rejected),
            "rejected_lines": [
                {"line": line, "reason": reason, "detail": detail}
                for line, reason, detail in self.rejected_lines
            ],
            "rejected_clients": [
                {
                    "client_id": client_id,
                    "rejected": sum(reasons.values()),
                    "reasons": dict(sorted(reasons.items())),
                }
                for client_id, reasons in self.ranked_refused()
            ],
        }

    def input_notes(self) -> list[str]:
        """What the inputs hold that the scores alone do not say, one sentence each: answers
        without scores and inputs with missing values, with how each was read (the summary
        printed on the terminal and the HTML report say the same).

        >>> ReplayReport(events=10, unscored=4).input_notes()[0][:32]
        'answers without scores: 4 of 10 '
        """
        notes = []
        if self.unscored:
            notes.append(
                f"answers without scores: {self.unscored} of {self.events} (labels only or no answer: "
                "the boundary test reads prediction.scores, the confidence test ranks labels by their "
                "neighbours'; a model's scores logged under another name are not read)"
            )
        if self.gapped:
            notes.append(
                f"inputs with missing values: {self.gapped} of {self.events} (null or NaN, each read as "
                "the value of the profile cell nearest its record on the fields present)"
            )
        return notes

    def ranked_refused(self) -> list[tuple[str, Counter[str]]]:
        """Clients with refused events, most first (then by id)."""
        return sorted(self.refused_clients.items(), key=lambda item: (-item[1].total(), item[0]))

    def refused_senders(self, shown: int, name: Callable[[str], str] = str) -> tuple[str, str]:
        """Who sent the refused events, as the terminal summary and the HTML report say it:
        how many clients they name (a line that names none is not counted), and the ``shown``
        who sent most with their counts, each id as ``name`` writes it (shortened, escaped).
        Such a client has no row in the table when none of its events was valid.

        >>> r = ReplayReport(refused_clients={"b": Counter(non_finite=3), "a": Counter(not_json=1)})
        >>> r.refused_senders(1)
        ('2 named clients', 'b 3')
        """
        n = len(self.refused_clients)
        most = ", ".join(f"{name(c)} {r.total()}" for c, r in self.ranked_refused()[:shown])
        return f"{n} named client{'s' * (n != 1)}", most

    def write(self, f: TextIO) -> None:
        """``json.dumps(self.to_json(), indent=1)``, one client at a time: the whole document
        (a dict per client, then its text) would double a million-client replay's peak memory."""
        f.write('{\n "clients": [')
        for i, client in enumerate(self.ranked()):
            # A client sits two levels deep; JSON text has no raw newline inside a string.
            f.write(
                ("," if i else "") + "\n  " + json.dumps(client.to_json(), indent=1).replace("\n", "\n  ")
            )
        f.write("\n ]," if self.clients else "],")
        f.write(json.dumps(self._rest(), indent=1)[1:] + "\n")


def iter_batches(
    path: Path, batch: int = BATCH_LINES, *, max_line: int | None = None
) -> Iterator[list[tuple[int, bytes | int]]]:
    """(line number, bytes) batches of the non-blank lines of ``path``.

    A line longer than ``max_line`` bytes comes as its length instead of its bytes: it is
    read through in chunks and never held, so one huge line costs no memory.
    """
    lines: list[tuple[int, bytes | int]] = []
    size = 0
    with open_lines(path) as f:
        number = 0
        while True:
            line = f.readline() if max_line is None else f.readline(max_line + 2)
            if not line:
                break
            number += 1
            item: bytes | int = line
            if max_line is not None and len(line) > max_line + 1 and not line.endswith(b"\n"):
                item = len(line) + _skip_line(f)
            elif not line.strip():
                continue
            lines.append((number, item))
            size += len(line)
            if len(lines) >= batch or size >= BATCH_BYTES:
                yield lines
                lines, size = [], 0
    if lines:
        yield lines


def _skip_line(f: Any) -> int:
    """Read through the rest of the current line; return how many bytes it had."""
    skipped = 0
    while True:
        chunk = f.readline(_CHUNK)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def replay(
    path: str | Path,
    engine: Detector,
    *,
    progress: Callable[[int], None] | None = None,
    keep_rejected: int = 1000,
    inputs: InputSettings | None = None,
    stream: StreamSettings | None = None,
    history_points: int = 0,
    campaigns: CampaignStage | None = None,
) -> ReplayReport:
    """Replay ``path`` through ``engine``; with a ``campaigns`` stage, the engine's client
    summaries go through it in process and its campaigns (and their alerts) are reported."""
    path = Path(path)
    if not path.exists():
        raise QuerywatchError(f"{path}: no such file")
    if path.is_dir():
        raise QuerywatchError(f"{path} is a directory, not a JSONL trace")
    stream = stream or StreamSettings()
    report = ReplayReport()
    dedup = _Dedup(stream, engine.settings.dedup_capacity, report.clients)
    spilled = _Spilled(engine, dedup, stream.evict_idle) if engine.max_resident is not None else None
    pipeline: Pipeline[int] = Pipeline(
        engine,
        is_new=dedup.is_new,
        forget=dedup.forget,
        restore=None if spilled is None else spilled.restore,
        inputs=inputs,
    )
    eviction = _Eviction(engine.settings.idle_evict_seconds)

    def take(step: Step[int]) -> None:
        for number, exc, client_id, _model_id in step.refused:
            report.rejected[exc.reason] += 1
            if client_id is not None:
                report.refused_clients.setdefault(client_id, Counter())[exc.reason] += 1
            if len(report.rejected_lines) < keep_rejected:
                report.rejected_lines.append((number, exc.reason, exc.detail))
        report.duplicates += step.duplicates
        report.unscored += step.unscored
        report.gapped += step.result.gapped
        _absorb(report, step.result, history_points, dedup.waiting)
        if campaigns is not None:
            for summary in step.result.summaries:
                report.summaries += 1
                for event in campaigns.take(summary):
                    report.alerts[event.alert.alert_id] = event.alert
                    report.alert_events[event.type] += 1

    for lines in iter_batches(path, max_line=engine.settings.max_event_bytes):
        take(pipeline.step(Message(line, path, number) for number, line in lines))
        now = pipeline.guard.eviction_time()
        if stream.evict_idle and now is not None and now >= eviction.due:
            eviction.run(report, engine, dedup, now)
        if spilled is not None:
            spilled.spill(report, now)
        if progress is not None:
            progress(len(lines))
    take(pipeline.finish())
    for client in report.clients.values():
        if not client.evicted:  # else its extraction as of its eviction
            client.extraction = engine.extraction(client.client_id)
    if campaigns is not None:
        report.campaigns = [c.to_dict() for c in campaigns.campaigns() if c.first_alert_ts is not None]
    return report


class _Dedup:
    """Drops redeliveries in the scope ``stream.dedup_scope`` names.

    A client's latest request ids (``RecentIds``) are held by its ``ClientReport``
    (``seen``), and in ``waiting`` until it has one (the engine has not scored it yet).

    A returning client's event takes the id string of its report: what the engine keeps of
    a later event (a campaign summary's ``client_id``) then shares the one copy the engine
    and the report hold, rather than keeping its own (58 bytes).
    """

    def __init__(
        self, stream: StreamSettings, stream_capacity: int, clients: dict[str, ClientReport]
    ) -> None:
        self.per_client = stream.dedup_per_client
        self.clients = clients
        self.waiting: dict[str, RecentIds] = {}
        self.whole = RequestIdFilter(stream_capacity) if stream.dedup_scope == "stream" else None

    def is_new(self, event: Event, _line: int) -> bool:
        if self.whole is not None:
            return self.whole.is_new(event.request_id)
        client_id, request_id = event.client_id, event.request_id
        client = self.clients.get(client_id)
        if client is None:
            seen = self.waiting.get(client_id)
        else:
            seen = client.seen
            event.client_id = client.client_id
        ids, new = remember_id(seen, request_id, self.per_client)
        if ids is not seen:
            self._keep(client_id, client, ids)
        return new

    def forget(self, event: Event) -> None:
        """Undo ``is_new`` for an event refused after it (``Pipeline.forget``)."""
        if self.whole is not None:
            self.whole.forget(event.request_id)
            return
        client_id = event.client_id
        client = self.clients.get(client_id)
        seen = self.waiting.get(client_id) if client is None else client.seen
        ids = forget_id(seen, event.request_id)
        if ids is not seen:
            self._keep(client_id, client, ids)

    def _keep(self, client_id: str, client: ClientReport | None, seen: RecentIds | None) -> None:
        if client is not None:
            client.seen = seen
        elif seen is None:
            self.waiting.pop(client_id, None)
        else:
            self.waiting[client_id] = seen

    def pop(self, client_id: str) -> list[str] | None:
        """Forget a client's request ids; returns them, oldest first (None if it had none)."""
        client = self.clients.get(client_id)
        if client is None:
            seen = self.waiting.pop(client_id, None)
        else:
            seen, client.seen = client.seen, None
        return None if seen is None else id_list(seen)

    def put(self, client_id: str, ids: list[str]) -> None:
        """Remember a client's request ids again (``pop``'s list)."""
        recent = recent_ids(ids, self.per_client)
        if recent is not None:
            self._keep(client_id, self.clients.get(client_id), recent)


class _Spilled:
    """Replay's spill store: the serialized states of the clients spilled past the engine's
    cap, with their request ids, in memory until their next event."""

    def __init__(self, engine: Detector, dedup: _Dedup, evict_idle: bool) -> None:
        self.engine = engine
        self.dedup = dedup
        self.evict_idle = evict_idle
        self.states: dict[str, tuple[bytes, list[str] | None]] = {}
        #: The eviction clock as of the last batch: a state idle past it is not restored.
        self.now: float | None = None

    def spill(self, report: ReplayReport, now: float | None) -> None:
        """After a batch: spill the clients past the cap (their report keeps their extraction)."""
        self.now = now
        victims = self.engine.spill_candidates()
        for client_id in victims:
            client = report.clients.get(client_id)
            if client is not None:
                client.extraction, client.evicted = self.engine.extraction(client_id), True
        for client_id, data in self.engine.spill(victims).items():
            self.states[client_id] = (data, self.dedup.pop(client_id))

    def restore(self, batch: list[tuple[Event, int]]) -> None:
        """Before a batch: bring back its spilled clients, unless idle long enough to have been evicted."""
        wanted = {e.client_id for e, _ in batch if e.client_id in self.states}
        if not wanted:
            return
        stored = {client_id: self.states.pop(client_id) for client_id in wanted}
        idle_before = None
        if self.evict_idle and self.now is not None:
            idle_before = self.now - self.engine.settings.idle_evict_seconds
        back = self.engine.restore({c: data for c, (data, _) in stored.items()}, idle_before)
        for client_id in back:
            ids = stored[client_id][1]
            if ids is not None:
                self.dedup.put(client_id, ids)


@dataclass
class _Eviction:
    """Evicts idle clients as the consumer's checkpoints do, but looks only when one can be
    idle: ``due`` is when the least recently active client left will be (clients' latest
    event times only grow), so a replay of a million clients does not scan them per batch."""

    idle_seconds: float
    due: float = float("-inf")

    def run(self, report: ReplayReport, engine: Detector, dedup: _Dedup, now: float) -> None:
        horizon = now - self.idle_seconds
        idle = {c.client_id: c for c in report.clients.values() if c.last_ts < horizon and not c.evicted}
        extraction = {client_id: engine.extraction(client_id) for client_id in idle}
        for client_id in engine.evict_idle(now):
            dedup.pop(client_id)
            client = idle.get(client_id)
            if client is not None:
                client.extraction, client.evicted = extraction[client_id], True
        active = [c.last_ts for c in report.clients.values() if c.last_ts >= horizon]
        self.due = min(active, default=now) + self.idle_seconds


def _absorb(
    report: ReplayReport,
    result: BatchResult,
    history_points: int = 0,
    waiting: dict[str, RecentIds] | None = None,
) -> None:
    """Add a batch's outcomes to the report; a new client's report takes its request ids
    from ``waiting`` (``_Dedup``)."""
    for outcome in result.outcomes:
        u = outcome.update
        report.events += 1
        client = report.clients.get(u.client_id)
        if client is None:
            client = report.clients[u.client_id] = ClientReport(u.client_id)
            if waiting:
                client.seen = waiting.pop(u.client_id, None)
            if history_points:
                client.timeline = RiskTimeline(history_points)
        client.queries += 1
        client.last_ts, client.evicted = u.ts, False
        if client.timeline is not None:
            client.timeline.add(client.queries, u.ts, u.risk)
        if u.risk >= client.risk:
            client.risk = u.risk
            if u.reasons:
                client.reasons = u.reasons
        event = outcome.event
        if event is not None:
            report.alerts[event.alert.alert_id] = event.alert
            report.alert_events[event.type] += 1
            if client.first_alert_query is None:
                client.first_alert_query = client.queries
                client.reasons = event.alert.reasons


def write_report(report: ReplayReport, path: str | Path) -> None:
    """Write the report whole, or leave the previous one as it was (``outputs.written_whole``)."""
    with written_whole(path) as f:
        report.write(cast(TextIO, f))
