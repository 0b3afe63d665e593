"""The model-level reference stage in front of the per-(client, model) fold.

A model without a reference profile cannot be scored, nor can one whose trusted profile
awaits live answers (``answers="pending"``, ``models.answers``). Its first events form the
warm-up sample: this stage holds them (``warmup_events`` per model, plus the rest of the batch that
fills it; all of one input dimension), builds the profile once the sample is full and hands
the held events back to be scored, in order. Nothing else waits for it: events of profiled
models pass straight on, and a consumer checkpoints the held events with their partition
(``pack_events``), so offsets and client states of every other model move on while one
model is still warming up, and a restart takes the sample back instead of losing it.

A sample of ``warmup_events`` is full once it holds events of a quarter of the clients it is
sized for (``warmup_events / warmup_per_client``, each sending its cap: 125 by default); with
fewer it holds on, up to ``WARMUP_WAIT`` times ``warmup_events``. A few heavy clients that
open a model's traffic (a batch job, or thieves that start with it) otherwise made the whole
reference: on the project simulator's tabular victim with its 25 thieves starting with the
trace, the first 20,000 events held 43 clients, 25 of them thieves (1,000 of the 1,585 rows
kept), and the profile they made alerted 10 of the 25 thieves and 23 of 25 drifting benign
clients.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgpack
import numpy as np

from querywatch.detector.config import DetectionSettings
from querywatch.detector.config.detection import WARMUP_WAIT
from querywatch.detector.engine.events import Event
from querywatch.detector.engine.profiles import (
    ProfileStore,
    profile_from_warmup,
    profile_with_live_answers,
)
from querywatch.detector.errors import InvalidEvent, ProfileError


@dataclass
class Released:
    """What one call to the stage let go of."""

    events: list[Event] = field(default_factory=list)
    """Held events whose model now has a profile, in the order they arrived."""
    models: list[str] = field(default_factory=list)
    """Models whose warm-up completed (or failed) in this call."""
    rejected: list[tuple[Event, InvalidEvent]] = field(default_factory=list)


class ReferenceStage:
    """Warm-up samples of the models that have no profile yet."""

    def __init__(self, settings: DetectionSettings, profiles: ProfileStore) -> None:
        self.settings = settings
        self.profiles = profiles
        self._samples: dict[str, list[Event]] = {}
        #: The dimension a profile awaiting live answers fixes, per model (None: no such profile).
        self._dims: dict[str, int | None] = {}
        #: Per model, the clients with events in the sample.
        self._clients: dict[str, set[str]] = {}

    def hold(self, model_id: str, run: Sequence[Event], out: Released) -> None:
        """Add ``run`` (events of ``model_id``) to its sample; complete the warm-up when full.
        Without a profile the sample holds inputs of any width: ``complete`` keeps the width
        most of them have (``_of_one_width``)."""
        if model_id not in self._dims:
            pending = self.profiles.get(model_id)
            self._dims[model_id] = None if pending is None else pending.dim
        dim = self._dims[model_id]
        sample = self._samples.setdefault(model_id, [])
        start = len(sample)
        if dim is None:
            sample.extend(run)
        else:
            for event in run:
                if len(event.input) != dim:
                    out.rejected.append((event, wrong_dimension(event, dim)))
                else:
                    sample.append(event)
        self._clients.setdefault(model_id, set()).update(e.client_id for e in sample[start:])
        if self._is_full(model_id, sample):
            self.complete(model_id, out)

    def _is_full(self, model_id: str, sample: Sequence[Event]) -> bool:
        """Whether ``model_id``'s warm-up ``sample`` is complete (module docstring)."""
        wanted = self.settings.warmup_events
        if len(sample) < wanted:
            return False
        enough = wanted / (WARMUP_WAIT * self.settings.warmup_per_client)
        return len(self._clients[model_id]) >= enough or len(sample) >= WARMUP_WAIT * wanted

    def complete(self, model_id: str, out: Released) -> None:
        """Build ``model_id``'s profile from its sample, whatever its size, and release it;
        where a usable profile is stored already (another consumer of the group stored one
        first: ``DatabaseProfileStore``, first writer wins), release the sample to be scored
        with that one."""
        sample = _of_one_width(self._samples.pop(model_id, []), out)
        self._dims.pop(model_id, None)
        self._clients.pop(model_id, None)
        out.models.append(model_id)
        if not sample:
            return
        trusted = self.profiles.get(model_id)
        try:
            if trusted is None:
                self.profiles.put(profile_from_warmup(sample, self.settings))
            elif trusted.answers == "pending":
                self.profiles.put(profile_with_live_answers(trusted, sample, self.settings))
        except ProfileError as exc:  # e.g. a model seen once: its events only, never the others
            error = InvalidEvent("no_profile", str(exc))
            out.rejected.extend((event, error) for event in sample)
            return
        out.events.extend(sample)

    def flush(self) -> Released:
        """Complete every warm-up now (the end of a replay)."""
        out = Released()
        for model_id in list(self._samples):
            self.complete(model_id, out)
        return out

    def pending(self) -> int:
        """Events held in all samples."""
        return sum(len(v) for v in self._samples.values())

    def awaits_answers(self, model_id: str) -> bool:
        """Whether ``model_id``'s sample completes a trusted profile's answers (a file of inputs
        alone) rather than building a warm-up profile."""
        return self._dims.get(model_id) is not None

    def holds(self, model_id: str) -> bool:
        """Whether a sample of ``model_id`` is held."""
        return model_id in self._samples

    def held_models(self) -> list[str]:
        """Models of which a sample is held."""
        return list(self._samples)

    def held_by_model(self) -> dict[str, int]:
        """Events held in each model's sample (its warm-up completes at ``warmup_events`` or
        later: module docstring)."""
        return {model_id: len(sample) for model_id, sample in self._samples.items()}

    def held_clients(self) -> set[str]:
        """Clients with events held in a sample."""
        return {e.client_id for sample in self._samples.values() for e in sample}

    def drop_clients(self, client_ids: Iterable[str]) -> None:
        """Forget the held events of these clients (their partition moved elsewhere; the new
        owner takes them from the partition's checkpoint)."""
        gone = set(client_ids)
        for model_id, sample in list(self._samples.items()):
            kept = [e for e in sample if e.client_id not in gone]
            if kept:
                self._samples[model_id] = kept
                self._clients[model_id] = {e.client_id for e in kept}
            else:
                self._clients.pop(model_id, None)
                del self._samples[model_id]
                self._dims.pop(model_id, None)


def _of_one_width(sample: list[Event], out: Released) -> list[Event]:
    """The events of ``sample`` whose input has the width most of them have (ties: the
    earliest); the others go to ``out.rejected``. Fixing the width by the first event let one
    malformed event opening a model's stream refuse every event after it: a replay of 3,000
    events behind one three-input event refused all 3,000 and scored nothing.

    >>> import numpy as np
    >>> def e(width: int) -> Event:
    ...     return Event("r", 0.0, "c", "m", np.zeros(width))
    >>> out = Released()
    >>> [len(x.input) for x in _of_one_width([e(3), e(2), e(2)], out)]
    [2, 2]
    >>> [error.detail for _, error in out.rejected]
    ["model 'm' takes 2 inputs, got 3"]
    """
    widths = Counter(len(event.input) for event in sample)
    if len(widths) < 2:
        return sample
    dim = widths.most_common(1)[0][0]
    out.rejected.extend((event, wrong_dimension(event, dim)) for event in sample if len(event.input) != dim)
    return [event for event in sample if len(event.input) == dim]


def wrong_dimension(event: Event, dim: int) -> InvalidEvent:
    return InvalidEvent(
        "wrong_dimension", f"model {event.model_id!r} takes {dim} inputs, got {len(event.input)}"
    )


def pack_events(events: Sequence[Event]) -> bytes:
    """Held events as plain data (MessagePack; inputs and scores as float64 bytes), with
    their sources: a held event is scored after a restart, and its IP, user agent and
    organisation are what alerts and the campaign stage show.

    >>> e = Event("r", 1.5, "c", "m", np.array([1.0, 2.0]), 3, np.array([0.25, 0.75]), "10.0.0.1")
    >>> back = unpack_events(pack_events([e]))[0]
    >>> (back.request_id, back.ts, back.label, back.input.tolist(), back.scores.tolist(), back.ip)
    ('r', 1.5, 3, [1.0, 2.0], [0.25, 0.75], '10.0.0.1')
    """
    rows = [
        (
            e.request_id,
            e.ts,
            e.client_id,
            e.model_id,
            np.asarray(e.input, dtype=np.float64).tobytes(),
            e.label,
            None if e.scores is None else np.asarray(e.scores, dtype=np.float64).tobytes(),
            e.ip,
            e.user_agent,
            e.org,
        )
        for e in events
    ]
    packed: bytes = msgpack.packb(rows, use_bin_type=True)
    return packed


def unpack_events(data: bytes) -> list[Event]:
    """The events ``pack_events`` stored; ValueError if ``data`` is not such a list.
    Rows of earlier releases (seven fields, no sources) load with no sources."""
    try:
        events = []
        for rid, ts, client, model, inputs, label, scores, *sources in msgpack.unpackb(data, raw=False):
            if len(sources) not in (0, 3) or any(s is not None and not isinstance(s, str) for s in sources):
                raise ValueError(f"a held event's sources are not three strings: {sources!r}")
            events.append(
                Event(
                    str(rid),
                    float(ts),
                    str(client),
                    str(model),
                    np.frombuffer(inputs, dtype=np.float64).copy(),
                    label,
                    None if scores is None else np.frombuffer(scores, dtype=np.float64).copy(),
                    *sources,
                )
            )
        return events
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"not a list of held events: {exc}") from None
