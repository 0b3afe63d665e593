"""Checks of an event against the stream it came in, before the engine sees it.

``parse_event`` judges one event alone. Two things can only be judged against the
stream: whether a model's answers keep one width of ``scores``, and whether an event's
time is plausible. A single event stamped far in the future (``2100-01-01``) must not
move anyone's clock but its own: idle eviction, and every time-based feature, follow
event time.

Each source (a Kafka partition, a replayed file) has a ``StreamClock`` with a watermark,
the latest admitted event time. An event more than ``margin`` seconds past it is
dead-lettered (``future_timestamp``) or, with ``clamp``, stamped at the watermark plus the
margin. A replay of old logs is judged against its own times, never the wall clock. When
three clients are ahead, or as many known clients as the stream has (one or two), the
stream itself moved on (a gap in old logs) and the watermark follows; a newcomer alone
far ahead of a stream of one client does not move it.

Idle clients are judged against another clock, ``now``: the third latest of the admitted
times of the source's recent distinct clients. One client, one vote, so no single client
(not even one stepping its times forward by the margin, event after event) makes the
others look idle.
"""

from __future__ import annotations

import heapq
from collections import Counter, OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from statistics import median_low
from typing import Any

from querywatch.detector.engine.events import Event
from querywatch.detector.errors import InvalidEvent

#: Distinct clients whose latest times are remembered per stream.
WINDOW = 31
#: Clients that set the clock (its QUORUM-th latest), and that must be ahead for it to jump.
QUORUM = 3


class StreamClock:
    """The event-time clocks of one source (see the module's docstring).

    >>> clock = StreamClock(margin=3600)
    >>> ok = [Event(f"r{i}", 1000.0 + i, f"c{i}", "m", None) for i in range(5)]  # type: ignore[arg-type]
    >>> clock.judge(ok)
    []
    >>> far = Event("x", 4e9, "thief", "m", None)  # type: ignore[arg-type]
    >>> [error.reason for _, error in clock.judge([far])], clock.watermark, clock.now
    (['future_timestamp'], 1004.0, 1002.0)
    """

    def __init__(self, *, margin: float, clamp: bool = False) -> None:
        self.margin = margin
        self.clamp = clamp
        self._recent: OrderedDict[str, float] = OrderedDict()
        self._ahead: OrderedDict[str, float] = OrderedDict()
        #: Latest admitted time: an event more than ``margin`` past it is judged.
        self.watermark: float | None = None
        #: The QUORUM-th latest time of the recent clients: what idle clients are judged against.
        self.now: float | None = None

    def judge(self, events: Sequence[Event]) -> list[tuple[Event, InvalidEvent]]:
        """Events of ``events`` too far ahead, with their rejection (none in clamp mode,
        where their ``ts`` is lowered instead). Admitted events move the watermark."""
        if not events:
            return []
        mark = self.watermark if self.watermark is not None else median_low([e.ts for e in events])
        rejected: list[tuple[Event, InvalidEvent]] = []
        recent, waiting, margin = self._recent, self._ahead, self.margin
        for event in events:
            ts = event.ts
            if ts <= mark + margin:  # nearly every event: ``_note`` inline, no max() call
                if ts > mark:
                    mark = ts
                client_id = event.client_id
                previous = recent.pop(client_id, None)
                recent[client_id] = ts if previous is None or ts > previous else previous
                if len(recent) > WINDOW:
                    recent.popitem(last=False)
                if waiting:
                    waiting.pop(client_id, None)
                continue
            _note(self._ahead, event.client_id, event.ts)
            known = sum(1 for client_id in self._ahead if client_id in self._recent)
            if len(self._ahead) >= QUORUM or known >= min(QUORUM, len(self._recent)):
                # Several clients are ahead: the stream itself moved on (a gap in old logs).
                mark = max(mark, min(self._ahead.values()), event.ts)
                for client_id, ts in self._ahead.items():
                    _note(self._recent, client_id, ts)
                self._ahead.clear()
            elif self.clamp:
                event.ts = mark + self.margin
            else:
                ahead = f"{event.ts - mark:.0f} s ahead of its stream (the margin is {self.margin:.0f} s)"
                rejected.append((event, InvalidEvent("future_timestamp", f"'ts' is {ahead}")))
        self.watermark = mark
        if self._recent:
            self.now = _clock(self._recent)
        return rejected

    def state(self) -> dict[str, Any]:
        """The watermark and the recent clients' latest times (oldest first), as plain data:
        what a partition's checkpoint stores. The clients ahead are not kept: they show again.

        >>> clock = StreamClock(margin=3600)
        >>> seen = [Event(f"r{i}", 1000.0 + i, f"c{i % 3}", "m", None) for i in range(6)]  # type: ignore
        >>> _ = clock.judge(seen)
        >>> back = StreamClock.from_state(clock.state(), margin=3600)
        >>> (back.watermark, back.now) == (clock.watermark, clock.now)
        True
        >>> [e.reason for _, e in back.judge([Event("x", 9000.0, "c0", "m", None)])]  # type: ignore[arg-type]
        ['future_timestamp']
        """
        return {"watermark": self.watermark, "recent": [[c, ts] for c, ts in self._recent.items()]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], *, margin: float, clamp: bool = False) -> StreamClock:
        """A clock as ``state`` left it; ValueError if ``state`` is not one."""
        try:
            watermark = float(state["watermark"])
            recent = [(str(client_id), float(ts)) for client_id, ts in state["recent"]][-WINDOW:]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a stored event-time clock: {exc!r}") from None
        clock = cls(margin=margin, clamp=clamp)
        clock.watermark = watermark
        clock._recent.update(recent)
        if recent:
            clock.now = _clock(clock._recent)
        return clock

    @property
    def settled(self) -> bool:
        """Whether enough clients set ``now`` to act on it (e.g. to evict idle clients)."""
        return len(self._recent) >= QUORUM


def _clock(window: OrderedDict[str, float]) -> float:
    """The ``QUORUM``-th latest time of the window's clients (the earliest with fewer)."""
    return heapq.nlargest(QUORUM, window.values())[-1]


def _note(window: OrderedDict[str, float], client_id: str, ts: float) -> None:
    previous = window.pop(client_id, None)
    window[client_id] = ts if previous is None else max(previous, ts)
    if len(window) > WINDOW:
        window.popitem(last=False)


class ScoreWidths:
    """The number of ``scores`` each model answers with: the width most of its answers so
    far had (ties: the earlier). An answer of another width is refused. Locking the first
    answer's width instead let one malformed answer at the start of a stream (or of a
    consumer's run) refuse every answer after it: a replay of 3,000 events behind one
    two-score answer refused all 3,000 and scored nothing. Now the model's true width takes
    over at its second answer, refusing at most that one.

    >>> widths = ScoreWidths()
    >>> import numpy as np
    >>> def answer(width: int) -> Event:
    ...     return Event("r", 0.0, "c", "m", np.zeros(2), None, np.full(width, 1.0 / width))
    >>> [error.detail for _, error in widths.judge([answer(2), answer(3)])]
    ["model 'm' answers with 2 scores, this event has 3"]
    >>> widths.judge([answer(3), answer(3)]), widths.judge([answer(2)] * 2)[1][1].detail
    ([], "model 'm' answers with 3 scores, this event has 2")
    """

    def __init__(self) -> None:
        self._widths: dict[str, int] = {}
        #: Answers of each width, per model (a model answers with one or a few widths).
        self._counts: dict[str, Counter[int]] = {}

    def judge(self, events: Sequence[Event]) -> list[tuple[Event, InvalidEvent]]:
        rejected = []
        for event in events:
            if event.scores is None:
                continue
            size, model_id = event.scores.size, event.model_id
            counts = self._counts.get(model_id)
            if counts is None:
                counts = self._counts[model_id] = Counter()
            counts[size] += 1
            width = self._widths.get(model_id)
            if width == size:
                continue
            if width is None or counts[size] > counts[width]:
                self._widths[model_id] = size
                continue
            detail = f"model {model_id!r} answers with {width} scores, this event has {size}"
            rejected.append((event, InvalidEvent("bad_scores", detail)))
        return rejected


class EventGuard:
    """Both checks, with one clock per source (partition key, file name)."""

    def __init__(self, *, margin: float, clamp: bool = False) -> None:
        self.margin = margin
        self.clamp = clamp
        self.clocks: dict[Hashable, StreamClock] = {}
        self.widths = ScoreWidths()

    def judge(
        self, source: Hashable, events: Sequence[Event]
    ) -> tuple[list[Event], list[tuple[Event, InvalidEvent]]]:
        """``events`` split into those to score, in order, and those to dead-letter."""
        clock = self.clocks.get(source)
        if clock is None:
            clock = self.clocks[source] = StreamClock(margin=self.margin, clamp=self.clamp)
        rejected = clock.judge(events)
        if rejected:
            refused = {id(event) for event, _ in rejected}
            events = [e for e in events if id(e) not in refused]
        wrong = self.widths.judge(events)
        if wrong:
            refused = {id(event) for event, _ in wrong}
            events = [e for e in events if id(e) not in refused]
        return list(events), rejected + wrong

    def forget(self, source: Hashable) -> None:
        """Drop a source's clock (a partition that moved to another consumer)."""
        self.clocks.pop(source, None)

    def resume(self, source: Hashable, state: Mapping[str, Any]) -> None:
        """Start a source's clock from the state stored with its checkpoint
        (``StreamClock.state``), so that its new owner judges event times as the old one did
        rather than from its first batch's median. ValueError if ``state`` is not one."""
        self.clocks[source] = StreamClock.from_state(state, margin=self.margin, clamp=self.clamp)

    def state(self, source: Hashable) -> dict[str, Any] | None:
        """A source's clock to store (None before its first admitted event)."""
        clock = self.clocks.get(source)
        return None if clock is None or clock.watermark is None else clock.state()

    def eviction_time(self) -> float | None:
        """The time idle clients are judged against: the earliest settled clock, so that no
        source's events make another source's clients look idle."""
        times = [c.now for c in self.clocks.values() if c.settled and c.now is not None]
        return min(times) if times else None
