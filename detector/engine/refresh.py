"""The schedule of profile refreshes: when the engine tests a model's profile for drift.

Every ``refresh_every`` events of a model, the engine looks at the store for a newer
revision (another consumer of the group may have refreshed it) and otherwise places a
sample of the model's recent events against its profile (``models.refresh``); the first
such window of a revision is the baseline of its drift test. The sample is a uniform
reservoir (Vitter's algorithm L) of at most ``refresh_sample`` events since the last check,
from *quiet* clients only — no open alert, peak risk below ``clear_risk`` — and at most
``warmup_per_client`` of each, like a warm-up. At the check, events of clients that have
turned suspect since are dropped. A profile from a trusted reference file is refreshed only
with ``refresh_trusted``. The sample and the baseline are held in memory: after a restart
the first window is the baseline again.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.clientstate import ModelContext, score_columns
from querywatch.detector.engine.events import Event
from querywatch.detector.engine.profiles import ProfileStore
from querywatch.models.profile import ReferenceProfile
from querywatch.models.refresh import Window, refresh_profile

#: Whether a client may give events to a refresh sample (by client id).
Quiet = Callable[[str], bool]


class RefreshSample:
    """Uniform reservoir of events of quiet clients, at most ``per_client`` of each."""

    def __init__(self, size: int, per_client: int, seed: int) -> None:
        self.size = size
        self.per_client = per_client
        self.seen = 0
        self.events: list[Event] = []
        self._owners: Counter[str] = Counter()
        self._rng = np.random.default_rng(seed)
        self._w = 1.0
        self._next = 0  # index (in events seen) of the next event algorithm L considers

    def offer(self, events: Sequence[Event], quiet: Quiet) -> None:
        start = self.seen
        self.seen += len(events)
        while self._next < self.seen:
            event = events[self._next - start]
            if quiet(event.client_id) and self._owners[event.client_id] < self.per_client:
                self._take(event)
            if len(self.events) < self.size:
                self._next += 1
            else:
                self._w *= math.exp(math.log(self._rng.random()) / self.size)
                self._next += int(math.log(self._rng.random()) / math.log1p(-self._w)) + 1

    def _take(self, event: Event) -> None:
        if len(self.events) < self.size:
            self.events.append(event)
        else:
            slot = int(self._rng.integers(self.size))
            evicted = self.events[slot].client_id
            if self._owners[evicted] == 1:
                del self._owners[evicted]  # a client with none left holds no entry
            else:
                self._owners[evicted] -= 1
            self.events[slot] = event
        self._owners[event.client_id] += 1


class RefreshSchedule:
    """Per model: the refresh sample, when its drift check is due, and the baseline window
    (the first check of the revision in use) the next checks are tested against."""

    def __init__(self, settings: DetectionSettings, profiles: ProfileStore) -> None:
        self.settings = settings
        self.profiles = profiles
        self._samples: dict[str, RefreshSample] = {}
        self._baselines: dict[str, tuple[int, Window]] = {}

    def observe(self, profile: ReferenceProfile, events: Sequence[Event], quiet: Quiet) -> bool:
        """Offer a run of ``profile``'s model's events to its sample; True when a check is due."""
        every = self.settings.refresh_every
        if not every:
            return False
        sample = self._samples.get(profile.model_id)
        if sample is None:
            sample = self._samples[profile.model_id] = RefreshSample(
                self.settings.refresh_sample, self.settings.warmup_per_client, self.settings.seed
            )
        sample.offer(events, quiet)
        return sample.seen >= every

    def check(self, context: ModelContext, quiet: Quiet) -> ReferenceProfile | None:
        """The profile the model should use from now on, if not ``context``'s: a newer
        revision from the store, or a refresh of it (stored first; if another consumer stored
        that revision first, theirs). Starts the next sample."""
        profile = context.profile
        model_id = profile.model_id
        sample = self._samples.pop(model_id, None)
        stored = self.profiles.latest(model_id)
        if stored is not None and stored.revision > profile.revision:
            return stored
        if sample is None or (profile.origin != "warmup" and not self.settings.refresh_trusted):
            return None
        kept = [e for e in sample.events if quiet(e.client_id)]
        if not kept:
            return None
        revision, baseline = self._baselines.get(model_id, (-1, None))
        refresh = refresh_profile(
            profile,
            np.array([e.input for e in kept]),
            np.array([e.client_id for e in kept]),
            margins=score_columns(kept)[0],
            classes=context.class_indices(kept),
            baseline=baseline if revision == profile.revision else None,
            at=max(e.ts for e in kept),
            alpha=self.settings.false_alarm_rate,
        )
        if refresh.window is not None and revision != profile.revision:
            self._baselines[model_id] = (profile.revision, refresh.window)
        if refresh.profile is None:
            return None
        self.profiles.put(refresh.profile)
        return self.profiles.get(model_id)
