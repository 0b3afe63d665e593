"""One client's state on one model: features, evidence tests and alert bookkeeping."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from querywatch.detector.engine.alerting import OpenAlert, Sources
from querywatch.detector.engine.events import Event
from querywatch.features.client import ClientFeatures, ProfileLimits, score_summary
from querywatch.features.layout import reservoir_capacity
from querywatch.features.resend import input_hashes
from querywatch.models.evidence import ClientEvidence, EvidenceTests
from querywatch.models.population import POPULATION_FEATURES, PopulationModel
from querywatch.models.profile import MAX_CLASSES, ReferenceProfile, class_indices

#: Events whose shared work ``ModelContext.query_rows`` does at once. A warm-up is released
#: whole: its 20,000 events of a 768-input model took 0.8 GB of temporaries in one piece.
ROWS_AT_ONCE = 2048
#: Class names not in the profile kept to name them (``ModelContext.unknown_classes``).
UNKNOWN_NAMES = 3


@dataclass
class ModelContext:
    """What every client of one model shares: the profile and tables derived from it."""

    profile: ReferenceProfile
    expected_cells: np.ndarray
    population: PopulationModel | None
    hash_key: int
    """Secret key of the exact-resend hash and of the reservoir's choices: from the profile's
    version, a digest of the data it was built from, which a thief does not know."""
    limits: ProfileLimits
    """The profile's limits every client's features read (one object for all of them)."""
    nulls: dict[str, float] = field(default_factory=dict)
    """The null rate of each evidence test by name (set by the engine from the profile and
    settings: ``Registry.nulls``)."""
    tests: EvidenceTests = field(default_factory=EvidenceTests)
    """The evidence tests at ``nulls``, which every client's evidence shares."""
    labelled: int = 0
    """Answers read with a label, and of them those naming a class the profile does not know
    (``unknown_classes``): names that differ from the profile's (``"digit_3"`` against ``3``)
    left every client's extraction estimate at 0, and nothing said why."""
    unknown: int = 0
    unknown_names: set[str] = field(default_factory=set)
    gapped: int = 0
    """Events scored with a missing input value (NaN), each read as the nearest cell's
    (``ReferenceProfile.filled``): counted where the inputs are stacked anyway."""

    @classmethod
    def of(cls, profile: ReferenceProfile, seed: int = 0) -> ModelContext:
        population = None
        if profile.population.shape[0] >= 10 and profile.population.shape[1] == len(POPULATION_FEATURES):
            rows = [dict(zip(POPULATION_FEATURES, r, strict=True)) for r in profile.population.tolist()]
            population = PopulationModel(seed=seed).fit(rows)
        expected = profile.expected_cells()
        digest = hashlib.blake2b(f"{profile.model_id}\0{profile.version}\0{seed}".encode(), digest_size=8)
        hash_key = int.from_bytes(digest.digest(), "little") >> 1
        cal = profile.calibration
        limits = ProfileLimits(profile.margin_threshold)
        if cal is not None:  # a limit stored as -1 was not measured: none
            shared = cal.record_shared if cal.record_shared >= 0.0 else math.inf
            capacity = reservoir_capacity(profile.dim, len(profile.class_prior))
            isolation = ProfileLimits.isolation_by_rows(cal.isolation, capacity)
            limits = ProfileLimits(
                profile.margin_threshold,
                shared,
                max(cal.record_move, 0.0),
                isolation,
                cal.deep_margin,
                cal.deep_share,
            )
        return cls(profile, expected, population, hash_key, limits)

    def query_rows(self, events: Sequence[Event]) -> Iterator[tuple[Any, ...]]:
        """The arguments of ``ClientFeatures.update`` for each event (inputs of the profile's
        dimension), with the shared work — projection, cells, scores — done once for
        ROWS_AT_ONCE events at a time."""
        for start in range(0, len(events), ROWS_AT_ONCE):
            yield from self._rows(events[start : start + ROWS_AT_ONCE])

    def _rows(self, events: Sequence[Event]) -> list[tuple[Any, ...]]:
        inputs = np.array([e.input for e in events])
        self.gapped += int(np.isnan(inputs).any(axis=1).sum())
        view = self.profile.view(inputs)
        answered = self.class_indices(events)
        if self.profile.classes:
            self._count_unknown(events, answered)
        answers = self.profile.read_answers(view, answered, *score_columns(events))
        chance = view.boundary_chance
        cal = self.profile.calibration
        if cal is not None and cal.boundary_class_factors:
            chance = chance * cal.class_factors(answered)
        # Without ranks: the update's defaults (no rank).
        rank_columns: tuple[list[float], ...] = ()
        if answers.ranks is not None and answers.rank_means is not None:
            rank_columns = answers.ranks.tolist(), answers.rank_means.tolist()
        return list(
            zip(
                [e.ts for e in events],
                view.cell.tolist(),
                view.out_of_profile.tolist(),
                view.far.tolist(),
                view.quantized,
                input_hashes(inputs, self.hash_key).tolist(),
                answered.tolist(),
                answers.margins.tolist(),
                answers.entropies.tolist(),
                chance.tolist(),
                *rank_columns,
                strict=True,
            )
        )

    def _count_unknown(self, events: Sequence[Event], answered: NDArray[np.int64]) -> None:
        self.labelled += int(np.count_nonzero(answered >= 0))
        beyond = np.flatnonzero(answered == len(self.profile.classes))
        self.unknown += len(beyond)
        for i in beyond[: UNKNOWN_NAMES - len(self.unknown_names)]:
            self.unknown_names.add(str(events[i].answer))

    def unknown_classes(self) -> str | None:
        """Said when answers name classes the profile does not know, else None."""
        if not self.unknown:
            return None
        known = ", ".join(self.profile.classes[:UNKNOWN_NAMES])
        more = ", …" if len(self.profile.classes) > UNKNOWN_NAMES else ""
        # A warm-up names its classes from the same stream, so no name can differ there: its
        # unknown classes were too rare to be answered in it (or added since); and a profile
        # names its MAX_CLASSES most answered classes at most, whatever it came from.
        if len(self.profile.classes) >= MAX_CLASSES:
            why = (
                f"a profile names its {MAX_CLASSES} most answered classes at most (a class index "
                "is one byte of a client's state)"
            )
        elif self.profile.origin == "warmup":
            why = (
                "classes its warm-up never saw answered (rare ones of a model with many classes, or "
                "classes added since): a profile from a trusted file whose labels name every class "
                "(querywatch profile --input) knows them all"
            )
        else:
            why = (
                "a model retrained with new classes needs a new profile, and labels must be named as "
                "in the profile's file"
            )
        return (
            f"{self.profile.model_id}: {self.unknown:,} of {self.labelled:,} answers name a class its "
            f"profile does not know (e.g. {', '.join(sorted(self.unknown_names))}; the profile's: "
            f"{known}{more}); they count as no class, so the extraction estimate and the class tests "
            f"cannot read them: {why}"
        )

    def class_indices(self, events: Sequence[Event]) -> NDArray[np.int64]:
        """The profile's class index of each event's answer (-1 without one)."""
        return class_indices([e.answer for e in events], None, self.profile.classes)


class ClientState:
    """Mutable per-(client, model) state; ``to_state``/``from_state`` for checkpoints.

    A client of one model (nearly every client) is kept as its state alone, without a dict
    of one entry (about 200 bytes) around it: so the state also answers the few mapping
    operations the engine uses on a client's states by model (``PerModel``), as the
    mapping of its one model to itself.
    """

    __slots__ = (
        "alerts",
        "current",
        "evidence",
        "features",
        "last_snapshot_risk",
        "last_ts",
        "model_id",
        "open_alert",
        "peak",
        "population_risk",
        "queries",
        "sources",
    )

    def __init__(self, client_id: str, context: ModelContext, seed: int) -> None:
        p = context.profile
        client_seed = int.from_bytes(hashlib.blake2b(client_id.encode(), digest_size=8).digest(), "little")
        self.features = ClientFeatures(
            dim=p.dim,
            cell_prob=p.cell_prob,
            expected_cells=context.expected_cells,
            class_prior=p.class_prior,
            limits=context.limits,
            # Keyed like the resend hash: a thief who knows which of its queries the reservoir
            # kept could step only from the others and never show a structured step.
            seed=client_seed ^ seed ^ context.hash_key,
            extraction=p.extraction,
        )
        self.evidence = ClientEvidence(context.tests)
        self.model_id = p.model_id
        self.queries = 0
        self.alerts = 0
        self.open_alert: str | None = None
        self.peak = 0.0
        self.last_ts = float("-inf")
        self.last_snapshot_risk = -1.0
        self.population_risk = 0.0
        self.current: OpenAlert | None = None  # the open alert's lifecycle (open_alert is its id)
        # None until an event names its source (the events of many clients never do).
        self.sources: Sources | None = None

    def to_state(self, profile_version: str) -> dict[str, Any]:
        """Plain data, every part by name (``stateformat`` stores it)."""
        return {
            "profile": profile_version,
            "features": self.features.get_state(),
            "evidence": self.evidence.get_state(),
            "counters": {name: getattr(self, name) for name in _COUNTERS},
            "alert": None if self.current is None else self.current.to_state(),
            "sources": {
                "ips": [] if self.sources is None else list(self.sources.ips),
                "user_agents": [] if self.sources is None else list(self.sources.user_agents),
            },
        }

    def load_state(
        self, state: dict[str, Any], client_id: str = "", model_id: str = "", max_sources: int = 8
    ) -> list[str]:
        """Restore what ``state`` has; returns the parts that start fresh (unknown to the
        release that stored it, or stored in a shape this release no longer reads).
        ``max_sources`` bounds the sources it will remember from now on."""
        fresh = [f"features.{n}" for n in self.features.set_state(_mapping(state.get("features")))]
        fresh += [f"evidence.{n}" for n in self.evidence.set_state(_mapping(state.get("evidence")))]
        counters = _mapping(state.get("counters"))
        for name in _COUNTERS:
            value = counters.get(name, _MISSING)
            if value is _MISSING or not isinstance(value, _COUNTER_TYPES[name]):
                fresh.append(f"counters.{name}")
            else:
                setattr(self, name, value)
        sources = _mapping(state.get("sources"))
        ips = [v for v in sources.get("ips", ()) if isinstance(v, str)]
        user_agents = [v for v in sources.get("user_agents", ()) if isinstance(v, str)]
        if ips or user_agents:
            self.sources = Sources(max_sources)
            self.sources.ips, self.sources.user_agents = ips or (), user_agents or ()
        try:
            if isinstance(state.get("alert"), dict):
                self.current = OpenAlert.from_state(state["alert"])
        except (KeyError, TypeError, ValueError):
            fresh.append("alert")
        if self.current is None and self.open_alert is not None:  # stored before alert lifecycles
            self.current = OpenAlert.resumed(
                self.open_alert, client_id, model_id, self.last_ts, self.queries, self.peak
            )
        return fresh

    # ------------------------------------------------------------------ as {model_id: self}
    def get(self, model_id: str, default: Any = None) -> Any:
        return self if model_id == self.model_id else default

    def __getitem__(self, model_id: str) -> ClientState:
        if model_id != self.model_id:
            raise KeyError(model_id)
        return self

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[str]:
        return iter((self.model_id,))

    def values(self) -> tuple[ClientState]:
        return (self,)

    def items(self) -> tuple[tuple[str, ClientState]]:
        return ((self.model_id, self),)


PerModel = dict[str, ClientState] | ClientState
"""A client's states by model id: the state itself while it has one model, else a dict."""


def one_or_dict(states: dict[str, ClientState]) -> PerModel:
    """``states`` as a client keeps them: the state alone for one model, else the dict."""
    if len(states) == 1:
        return next(iter(states.values()))
    return states


#: The scalar fields of a ClientState and the types a stored value may have.
_COUNTER_TYPES: dict[str, type | tuple[type, ...]] = {
    "queries": int,
    "alerts": int,
    "open_alert": (str, type(None)),
    "peak": (float, int),
    "last_ts": (float, int),
    "last_snapshot_risk": (float, int),
    "population_risk": (float, int),
}
_COUNTERS = tuple(_COUNTER_TYPES)
_MISSING = object()


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def score_columns(events: Sequence[Event]) -> tuple[np.ndarray, np.ndarray]:
    """Score margins and normalised entropies of events (NaN where an event has no scores)."""
    widths = {len(e.scores) if e.scores is not None else -1 for e in events}
    if len(widths) == 1 and -1 not in widths:
        return score_summary(np.array([e.scores for e in events]))
    margins = np.full(len(events), np.nan)
    entropies = np.full(len(events), np.nan)
    for i, e in enumerate(events):
        if e.scores is not None:
            m, h = score_summary(e.scores[None, :])
            margins[i], entropies[i] = m[0], h[0]
    return margins, entropies
