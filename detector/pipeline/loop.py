"""One pipeline step for replay and consume: decode → dedup → guard → score.

``querywatch replay`` and ``querywatch consume`` hand the same ``Pipeline`` their raw
messages, each with a reference of its own (a line number, a Kafka record), and get back
the engine's result and the messages refused, with their reason. Where they may differ
is a named setting (``config/stream.py``), with the same default in both:

* **dedup scope** (``stream.dedup_scope``): the caller's ``is_new(event, ref)`` — by
  default each client's last ``stream.dedup_per_client`` request ids (the consumer stores
  them with its checkpoints); a replay may instead keep one filter over the whole trace;
* **eviction** of idle clients (``stream.evict_idle``): after each batch in replay, at
  each checkpoint in the consumer;
* **residency** (``residency.max_resident_clients``): the caller's ``restore(batch)`` brings
  back the spilled clients of a batch, once per batch and before the dedup (a client's
  request ids are spilled with it); replay keeps spilled states in memory, the consumer in
  its checkpoint table;
* **end of stream**, the one difference without a setting: ``finish()`` completes the
  warm-ups still held (replay); a consumer's stream does not end, and its held events are
  checkpointed instead.

The clock is read only to time the scoring (``Step.score_seconds``), never to decide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from querywatch.detector.config import InputSettings
from querywatch.detector.engine.detector import BatchResult, Detector
from querywatch.detector.engine.events import Event, claimed_identity, parse_event
from querywatch.detector.engine.guard import EventGuard
from querywatch.detector.errors import InvalidEvent

R = TypeVar("R")


@dataclass(slots=True)
class Message(Generic[R]):
    """One raw message: its bytes (None: no value; an int: the length of a message too
    large to hold), the stream it came from (the future-time guard keeps one watermark per
    stream), the caller's reference to it and its Kafka key (the client, if it cannot be read)."""

    value: bytes | int | None
    stream: Hashable
    ref: R
    key: bytes | None = None


class Refusal(NamedTuple, Generic[R]):
    """A message refused, why, and the client and model it names (None where it names none:
    ``claimed_identity``), so that refused events count against the client that sent them."""

    ref: R
    error: InvalidEvent
    client_id: str | None
    model_id: str | None


@dataclass
class Step(Generic[R]):
    """What one step did with a batch of messages."""

    result: BatchResult = field(default_factory=BatchResult)
    refused: list[Refusal[R]] = field(default_factory=list)
    duplicates: int = 0
    events: int = 0
    """Valid, new events handed to the engine."""
    unscored: int = 0
    """Events scored in this step whose answer carried no scores (labels only, or no answer):
    held ones count when their model's profile comes, refused ones never."""
    score_seconds: float = 0.0
    refs: dict[int, R] = field(default_factory=dict)
    """The reference of each event handed to the engine, by ``id(event)``."""
    unreferenced: list[tuple[Event, InvalidEvent]] = field(default_factory=list)
    """Refused events that no message of this pipeline brought: held events a consumer
    gave the engine back from a checkpoint (``take_back``), refused once their model's
    profile came."""


class Pipeline(Generic[R]):
    """Decode, drop redeliveries, guard event time and score, one batch at a time."""

    def __init__(
        self,
        engine: Detector,
        *,
        is_new: Callable[[Event, R], bool],
        forget: Callable[[Event], None],
        restore: Callable[[list[tuple[Event, R]]], None] | None = None,
        inputs: InputSettings | None = None,
        max_event_bytes: int | None = None,
    ) -> None:
        self.engine = engine
        self.is_new = is_new
        #: Undoes ``is_new`` for an event refused after it: its dead letter, re-driven once
        #: the cause is gone, must not be a redelivery then.
        self.forget = forget
        self.restore = restore
        inputs = inputs or InputSettings()
        self._max_bytes = max_event_bytes or engine.settings.max_event_bytes
        self._max_dim = inputs.max_input_dim
        self._project = inputs.oversized_inputs == "project"
        self._logits = inputs.scores == "logits"
        self.guard = EventGuard(margin=inputs.future_margin_seconds, clamp=inputs.future_events == "clamp")
        #: References of the events the reference stage holds, for refusals when it lets go
        #: (None: taken back, ``take_back``), and whether each answer lacks scores.
        self._held: dict[int, tuple[str, R | None, bool]] = {}

    def step(self, messages: Iterable[Message[R]]) -> Step[R]:
        out: Step[R] = Step()
        decoded: list[tuple[Event, Message[R]]] = []
        decode = self._decode
        for message in messages:
            try:
                decoded.append((decode(message.value), message))
            except InvalidEvent as exc:
                value = message.value if isinstance(message.value, bytes) else None
                if value is not None and len(value) > self._max_bytes:  # never parsed whole
                    value = None
                out.refused.append(Refusal(message.ref, exc, *claimed_identity(value, message.key)))
        if self.restore is not None and decoded:
            self.restore([(event, message.ref) for event, message in decoded])
        per_stream: dict[Hashable, list[Event]] = {}
        refs, is_new = out.refs, self.is_new
        for event, message in decoded:
            ref = message.ref
            if not is_new(event, ref):
                out.duplicates += 1
                continue
            refs[id(event)] = ref
            batch = per_stream.get(message.stream)
            if batch is None:
                batch = per_stream[message.stream] = []
            batch.append(event)
        events: list[Event] = []
        for stream, batch in per_stream.items():
            kept, refused = self.guard.judge(stream, batch)
            for event, error in refused:
                self.forget(event)
                out.refused.append(Refusal(out.refs[id(event)], error, event.client_id, event.model_id))
            events += kept
        if events:
            started = time.perf_counter()
            out.result = self.engine.process_batch(events)
            out.score_seconds = time.perf_counter() - started
            out.events = len(events)
            self._settle(out, events)
        return out

    def finish(self) -> Step[R]:
        """End of stream: build the profiles of models still warming up and score what they
        held (refusals carry the references of the messages that brought the events)."""
        return self._settled(self.engine.flush_warmup())

    def adopt_stored(self) -> Step[R]:
        """Score the held events of models whose profile another consumer stored since
        (``Detector.adopt_stored``; refusals carry their messages' references)."""
        return self._settled(self.engine.adopt_stored())

    def take_back(self, events: list[Event]) -> Step[R]:
        """Give the engine back events held through a checkpoint: no message of this
        pipeline brought them, so their refusals, now or once their profile comes, are
        ``unreferenced``."""
        return self._settled(self.engine.process_batch(events), events)

    def let_go(self, events: Iterable[Event]) -> None:
        """Forget the references of held events the engine dropped unsettled (their clients'
        partition was revoked: the next owner takes them back from its checkpoint)."""
        for event in events:
            self._held.pop(id(event), None)

    def _settled(self, result: BatchResult, handed: Sequence[Event] = ()) -> Step[R]:
        """A step of what the engine released outside any batch of messages."""
        out: Step[R] = Step(result=result)
        self._settle(out, handed)
        return out

    def _settle(self, out: Step[R], handed: Sequence[Event] = ()) -> None:
        """Map the engine's refusals to the messages that brought the events, and count the
        answers without scores among the events scored (``handed`` now, or held before)."""
        result = out.result
        for event in result.held:
            self._held[id(event)] = (event.model_id, out.refs.get(id(event)), event.scores is None)
        unsettled = {id(event) for event in result.held}
        unsettled.update(id(event) for event, _ in result.rejected)
        out.unscored = sum(1 for event in handed if event.scores is None and id(event) not in unsettled)
        for event, error in result.rejected:
            self.forget(event)
            ref = out.refs.get(id(event))
            if ref is None:
                held = self._held.pop(id(event), None)
                ref = None if held is None else held[1]
            if ref is None:
                out.unreferenced.append((event, error))
            else:
                out.refused.append(Refusal(ref, error, event.client_id, event.model_id))
        if result.completed and self._held:
            done = set(result.completed)
            out.unscored += sum(
                1 for model_id, _, unscored in self._held.values() if unscored and model_id in done
            )
            self._held = {k: v for k, v in self._held.items() if v[0] not in done}

    def _decode(self, value: bytes | int | None) -> Event:
        if value is None:
            raise InvalidEvent("not_json", "the message has no value")
        if isinstance(value, int):
            raise InvalidEvent("oversized", f"{value} bytes exceeds the limit of {self._max_bytes}")
        return parse_event(
            value,
            max_bytes=self._max_bytes,
            max_dim=self._max_dim,
            project=self._project,
            logits=self._logits,
        )
