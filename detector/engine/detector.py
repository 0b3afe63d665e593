"""The engine: per-client state, feature updates, evidence, risk and alert policy.

A keyed fold over (client, model): each key's state is updated by its events, in order, and
gives one ``Outcome`` per event. In front of it, the reference stage (``reference.py``) holds
the events of a model that has no profile yet, and lets them through once it has built one.
It is the same code for streaming and replay: a source hands it validated events in
order (per client), it returns one ``Outcome`` per event. Work shared by a batch (profile
projection, cells, out-of-profile scores, score margins) is vectorized; per-event work is
a handful of small updates. Nothing here reads the clock: time comes with the events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter

from querywatch.detector.config import DetectionSettings
from querywatch.detector.config.alerts import AlertSettings
from querywatch.detector.config.residency import ResidencySettings
from querywatch.detector.engine.alerting import AlertLifecycle, Observation, Sources
from querywatch.detector.engine.clientstate import ClientState, ModelContext, PerModel, one_or_dict
from querywatch.detector.engine.events import Event
from querywatch.detector.engine.outcomes import Outcome, RiskUpdate
from querywatch.detector.engine.profiles import ProfileStore
from querywatch.detector.engine.reference import ReferenceStage, Released, wrong_dimension
from querywatch.detector.engine.refresh import Quiet, RefreshSchedule
from querywatch.detector.engine.stateformat import dumps, loads
from querywatch.detector.engine.summaries import ClientSummary, SummaryRule, summarize
from querywatch.detector.errors import InvalidEvent
from querywatch.features.client import ClientFeatures, Indicators
from querywatch.models.evidence import EvidenceTests, evidence_threshold, fuse
from querywatch.models.profile import ReferenceProfile
from querywatch.models.reasons import explain, population_reason
from querywatch.models.registry import EVIDENCE_TESTS

#: Risk updates carry a full feature snapshot at least this often (queries), on alerts,
#: and whenever risk moved by SNAPSHOT_RISK_STEP since the last snapshot.
SNAPSHOT_EVERY = 100
SNAPSHOT_RISK_STEP = 0.05
#: Highest risk the population model alone can give (below the default "degrade" level).
POPULATION_WEIGHT = 0.45
#: Spilling brings the resident clients down to this share of the cap, so it runs now and
#: then for many clients (one scan of the resident ones each time), not at every new client.
SPILL_DOWN_TO = 0.9


@dataclass
class BatchResult:
    outcomes: list[Outcome] = field(default_factory=list)
    rejected: list[tuple[Event, InvalidEvent]] = field(default_factory=list)
    held: list[Event] = field(default_factory=list)
    """Events of this call the reference stage holds (their model is warming up)."""
    completed: list[str] = field(default_factory=list)
    """Models whose warm-up completed in this call: none of their events is held any more."""
    summaries: list[ClientSummary] = field(default_factory=list)
    """Client summaries due in this call (``summaries.SummaryRule``), when the engine emits them."""
    refreshed: list[ReferenceProfile] = field(default_factory=list)
    """Profiles the engine moved to in this call (a refresh, its own or another consumer's)."""
    gapped: int = 0
    """Events scored in this call with a missing input value (``ReferenceProfile.filled``)."""


class Detector:
    """Owns every client's state; see ``docs/CONTRACTS.md`` for how adapters use it."""

    def __init__(
        self,
        detection: DetectionSettings,
        profiles: ProfileStore,
        alerts: AlertSettings | None = None,
        residency: ResidencySettings | None = None,
    ) -> None:
        self.settings = detection
        #: Clients kept in memory at most (None: no cap); see ``spill_candidates``.
        self.max_resident = (residency or ResidencySettings()).max_resident_clients or None
        self.alert_settings = alerts or AlertSettings()
        self.lifecycle = AlertLifecycle(detection, self.alert_settings)
        self.profiles = profiles
        self.threshold = evidence_threshold(detection.false_alarm_rate)
        self.allowance = 0.25 * self.threshold
        self._contexts: dict[str, ModelContext] = {}
        self._clients: dict[str, PerModel] = {}
        self.reference = ReferenceStage(detection, profiles)
        self.refreshes = RefreshSchedule(detection, profiles)
        #: Set to emit client summaries for the campaign stage (``BatchResult.summaries``).
        self.summary_rule: SummaryRule | None = None
        #: Hashes the grouping keys in summaries when set (``campaigns.key_salt``).
        self.key_salt: str | None = None
        #: Parts of imported client states that started fresh (stored by a release that had no
        #: such part, or in a shape this one no longer reads), by name, since the caller last
        #: took them (``take_fresh_parts``): a consumer says so in its log.
        self._fresh_parts: Counter[str] = Counter()
        ClientFeatures.prepare()

    # ------------------------------------------------------------------ processing
    def process(self, event: Event) -> list[Outcome]:
        result = self.process_batch([event])
        if result.rejected:
            raise result.rejected[0][1]
        return result.outcomes

    def process_batch(self, events: Sequence[Event]) -> BatchResult:
        """Process events in order; events of a model still warming up are held back by the
        reference stage and come out (with their outcomes) in the call that completes it."""
        result = BatchResult()
        runs = [(model_id, list(run)) for model_id, run in groupby(events, key=attrgetter("model_id"))]
        for model_id, run in runs:
            context = self._context(model_id)
            if context is None:
                released = Released()
                self.reference.hold(model_id, run, released)
                if model_id not in released.models:
                    refused = {id(e) for e, _ in released.rejected}
                    result.held.extend(e for e in run if id(e) not in refused)
                self._release(released, result)
            else:
                if self.reference.holds(model_id):
                    self._adopt(model_id, result)
                self._score(context, run, result)
        return result

    def adopt_stored(self) -> BatchResult:
        """Score what is held for models whose profile another consumer stored since.

        A consumer adopts such a profile at its next event of the model (``process_batch``);
        this is for one whose clients of the model fell silent, which would otherwise hold
        their events until a restart. The stream processor calls it now and then."""
        result = BatchResult()
        for model_id in self.reference.held_models():
            if self._context(model_id) is not None:
                self._adopt(model_id, result)
        return result

    def _adopt(self, model_id: str, result: BatchResult) -> None:
        """Another consumer's warm-up stored ``model_id``'s profile first: what this one held
        would wait for a sample that no longer grows, so it is scored now, with that profile."""
        released = Released()
        self.reference.complete(model_id, released)
        self._release(released, result)

    def flush_warmup(self) -> BatchResult:
        """Build profiles from whatever warm-up events are held (end of a replay) and process them."""
        result = BatchResult()
        self._release(self.reference.flush(), result)
        return result

    def pending_warmup(self) -> int:
        """Events held back until their model has a profile."""
        return self.reference.pending()

    def _release(self, released: Released, result: BatchResult) -> None:
        result.rejected.extend(released.rejected)
        result.completed.extend(released.models)
        runs: dict[str, list[Event]] = {}
        for event in released.events:
            runs.setdefault(event.model_id, []).append(event)
        for model_id, run in runs.items():
            context = self._context(model_id)
            assert context is not None
            self._score(context, run, result, fitted=True)

    def _context(self, model_id: str) -> ModelContext | None:
        """The model's scoring context; None while it has no profile, or one that awaits
        live answers (both held by the reference stage)."""
        context = self._contexts.get(model_id)
        if context is None:
            profile = self.profiles.get(model_id)
            if profile is not None and profile.answers == "pending":
                profile = self.profiles.latest(model_id)  # completed by another consumer since?
            if profile is not None and profile.answers != "pending":
                context = self._contexts[model_id] = self._new_context(profile)
        return context

    def _new_context(self, profile: ReferenceProfile) -> ModelContext:
        context = ModelContext.of(profile, self.settings.seed)
        context.nulls = EVIDENCE_TESTS.nulls(profile.calibration, self.settings.tolerances)
        context.tests = EvidenceTests(context.nulls, calibration=profile.calibration)
        return context

    def models_in_use(self) -> list[str]:
        """The models the engine has scored events of (each with its profile in use)."""
        return list(self._contexts)

    def unknown_classes(self) -> dict[str, str]:
        """Per model whose answers named classes its profile does not know, what to say."""
        said = {m: c.unknown_classes() for m, c in self._contexts.items()}
        return {m: text for m, text in said.items() if text is not None}

    def profile_in_use(self, model_id: str) -> ReferenceProfile | None:
        """The profile (and so the revision) the engine scores ``model_id`` with now."""
        context = self._contexts.get(model_id)
        return None if context is None else context.profile

    def _quiet(self, model_id: str) -> Quiet:
        """Whether a client may feed ``model_id``'s refresh sample: no open alert on it and a
        peak risk below ``clear_risk``."""
        clients, clear = self._clients, self.settings.clear_risk

        def quiet(client_id: str) -> bool:
            state = clients.get(client_id, {}).get(model_id)
            return state is not None and state.current is None and state.peak < clear

        return quiet

    def _refresh(self, context: ModelContext, result: BatchResult) -> None:
        """Run the model's drift check; on a new revision, rebuild what derives from the
        profile and carry every client's evidence, counters and features over to it (a
        profile of another fit starts them afresh, as ``import_client`` does)."""
        profile = context.profile
        quiet = self._quiet(profile.model_id)
        newer = self.refreshes.check(context, quiet)
        if newer is None:
            return
        context = self._contexts[profile.model_id] = self._new_context(newer)
        for client_id, per_model in list(self._clients.items()):
            old = per_model.get(newer.model_id)
            if old is None:
                continue
            states = dict(per_model.items())
            if newer.version == profile.version:
                state = states[newer.model_id] = ClientState(client_id, context, self.settings.seed)
                state.load_state(
                    old.to_state(newer.version), client_id, newer.model_id, self.alert_settings.max_sources
                )
            else:
                del states[newer.model_id]
            if states:
                self._clients[client_id] = one_or_dict(states)
            else:
                del self._clients[client_id]
        result.refreshed.append(newer)

    def _score(
        self, context: ModelContext, run: list[Event], result: BatchResult, fitted: bool = False
    ) -> None:
        """Score a run of one model's events (``fitted``: the warm-up's own, which the
        profile was fitted on and so are no sample of new traffic for its drift check)."""
        profile = context.profile
        good = [e for e in run if len(e.input) == profile.dim]
        if len(good) != len(run):
            result.rejected.extend(
                (e, wrong_dimension(e, profile.dim)) for e in run if len(e.input) != profile.dim
            )
        if not good:
            return
        outcomes = result.outcomes
        step = self._step
        rule = self.summary_rule
        clients, model_id = self._clients, profile.model_id
        gapped = context.gapped
        for event, row in zip(good, context.query_rows(good), strict=True):
            # A client of this model alone (nearly every one) without the call to ``_state``.
            per_model = clients.get(event.client_id)
            if type(per_model) is ClientState and per_model.model_id == model_id:
                state = per_model
            else:
                state = self._state(event.client_id, context)
            previous_ts = state.last_ts
            outcome = step(state, event, state.features.update(*row), context)
            outcomes.append(outcome)
            if rule is not None and rule.due(state.queries, previous_ts, event.ts):
                result.summaries.append(
                    summarize(
                        state,
                        event,
                        profile=profile.version,
                        risk=outcome.update.risk,
                        doubling=rule.doubling(state.queries),
                        salt=self.key_salt,
                    )
                )
        result.gapped += context.gapped - gapped
        if not fitted and self.refreshes.observe(profile, good, self._quiet(profile.model_id)):
            self._refresh(context, result)

    def _state(self, client_id: str, context: ModelContext) -> ClientState:
        per_model = self._clients.get(client_id)
        model_id = context.profile.model_id
        state = None if per_model is None else per_model.get(model_id)
        if state is None:
            state = ClientState(client_id, context, self.settings.seed)
            if not per_model:
                self._clients[client_id] = state
            elif isinstance(per_model, ClientState):  # its second model
                self._clients[client_id] = {per_model.model_id: per_model, model_id: state}
            else:
                per_model[model_id] = state
        return state

    def _step(
        self, state: ClientState, event: Event, indicators: Indicators, context: ModelContext
    ) -> Outcome:
        state.evidence.update(indicators)
        state.queries += 1
        queries = state.queries
        if event.ts > state.last_ts:  # not max(): a builtin call per event
            state.last_ts = event.ts
        if event.ip is not None or event.user_agent is not None:
            if state.sources is None:
                state.sources = Sources(self.alert_settings.max_sources)
            state.sources.see(event.ip, event.user_agent)
        total = state.evidence.total(self.allowance)
        s = self.settings
        evidence_risk = fuse(total, self.threshold, s.alert_risk)
        current = state.current
        # Alerts follow the calibrated evidence only; the population model ranks, never alerts.
        opens = current is None and evidence_risk >= s.alert_risk and queries >= s.min_queries
        if current is None:
            alerting = opens  # what the lifecycle would say, without the call for every event
        else:
            risk_now = evidence_risk if evidence_risk > state.population_risk else state.population_risk
            alerting = self.lifecycle.needs_explanation(current, evidence_risk, risk_now, event.ts, queries)
        periodic = queries % SNAPSHOT_EVERY == 0
        features: dict[str, float] = {}
        reasons: tuple[str, ...] = ()
        if alerting or periodic or abs(evidence_risk - state.last_snapshot_risk) >= SNAPSHOT_RISK_STEP:
            features = state.features.snapshot()
            features["evidence"] = total / self.threshold
            reasons = explain(state.evidence.statistics(), features, queries, self.threshold, context.nulls)
            if context.population is not None and queries >= s.min_queries and (periodic or opens):
                percentile = context.population.percentile(features)
                features["population_percentile"] = percentile
                state.population_risk = POPULATION_WEIGHT * max(0.0, (percentile - 0.95) / 0.05)
                if percentile >= 0.99:
                    reasons += (population_reason(percentile),)
            state.last_snapshot_risk = evidence_risk
        risk = evidence_risk if evidence_risk > state.population_risk else state.population_risk
        if risk > state.peak:
            state.peak = risk
        update = RiskUpdate(event.client_id, event.model_id, event.ts, queries, risk, reasons, features)
        if current is None and not opens:
            return Outcome(update)
        seen = Observation(
            event.client_id,
            event.model_id,
            event.ts,
            queries,
            evidence_risk,
            risk,
            reasons,
            features,
            features.get("extraction"),
        )
        state.current, alert_event = self.lifecycle.step(current, seen, state.alerts + 1, state.sources)
        if opens:
            state.alerts += 1
        state.open_alert = None if state.current is None else state.current.alert.alert_id
        return Outcome(update, alert_event)

    # ------------------------------------------------------------------ state
    def client_ids(self) -> list[str]:
        return list(self._clients)

    def extraction(self, client_id: str) -> float | None:
        """The client's extraction estimate (``features.extraction``), the highest over the
        models it queried; None if no model of its has a labelled reference."""
        values = [s.features.extraction_estimate() for s in self._clients.get(client_id, {}).values()]
        known = [v for v in values if v is not None]
        return max(known) if known else None

    def export_client(self, client_id: str) -> bytes:
        states = self._clients.get(client_id, {})
        return dumps({m: s.to_state(self._contexts[m].profile.version) for m, s in states.items()})

    def import_client(self, client_id: str, data: bytes) -> None:
        """Restore a client's state; a state made under another profile version is dropped
        (the client starts afresh rather than mixing two references)."""
        restored: dict[str, ClientState] = {}
        for model_id, state in loads(data).items():
            context = self._context(model_id)
            if context is None or state.get("profile") != context.profile.version:
                continue
            client = ClientState(client_id, context, self.settings.seed)
            self._fresh_parts.update(
                client.load_state(state, client_id, model_id, self.alert_settings.max_sources)
            )
            restored[model_id] = client
        if restored:
            self._clients[client_id] = one_or_dict(restored)

    def take_fresh_parts(self) -> Counter[str]:
        """How many imported states had each part start fresh since the last call (a state
        of a wide input stored by a release of another layout generation: its
        ``features.distances``), and forget them."""
        fresh, self._fresh_parts = self._fresh_parts, Counter()
        return fresh

    def drop_client(self, client_id: str) -> None:
        """Forget a client: its state and any warm-up events of it still held."""
        self._clients.pop(client_id, None)
        if self.reference.pending():
            self.reference.drop_clients((client_id,))

    def evict_idle(self, now_ts: float) -> list[str]:
        """Forget clients with no event for ``idle_evict_seconds`` of event time. One with an
        event held for a warm-up stays: that event is scored on its state once released."""
        horizon = now_ts - self.settings.idle_evict_seconds
        held = self.reference.held_clients() if self.reference.pending() else set()
        idle = [c for c, per in self._clients.items() if _latest(per) < horizon and c not in held]
        self.release(idle)
        return idle

    # ------------------------------------------------------------------ residency
    def resident(self) -> int:
        """Clients whose state is in memory."""
        return len(self._clients)

    def absent(self, client_ids: Iterable[str]) -> set[str]:
        """Those of ``client_ids`` with no state in memory: new, evicted or spilled."""
        clients = self._clients
        return {c for c in client_ids if c not in clients}

    def over_cap(self) -> bool:
        return self.max_resident is not None and len(self._clients) > self.max_resident

    def spill_candidates(self) -> list[str]:
        """Past ``max_resident``: the least recently active clients (their latest event time),
        enough to bring the resident ones down to ``SPILL_DOWN_TO`` of the cap.

        Clients with warm-up events held stay: those events come back to the engine with no
        restore in front of them, and would start the client's other models afresh.
        """
        if self.max_resident is None or len(self._clients) <= self.max_resident:
            return []
        held = self.reference.held_clients() if self.reference.pending() else set()
        ranked = sorted((_latest(per), c) for c, per in self._clients.items() if c not in held)
        excess = len(self._clients) - (int(self.max_resident * SPILL_DOWN_TO) or self.max_resident)
        return [c for _, c in ranked[:excess]]

    def spill(self, client_ids: Iterable[str]) -> dict[str, bytes]:
        """Forget ``client_ids`` and return their states (``export_client``), for the caller
        to keep until ``restore``."""
        states = {c: self.export_client(c) for c in client_ids if c in self._clients}
        self.release(states)
        return states

    def release(self, client_ids: Iterable[str]) -> None:
        """Forget the state of ``client_ids`` (evicted, or spilled to where the caller keeps
        it); unlike ``drop_client``, their held warm-up events stay."""
        for client_id in client_ids:
            self._clients.pop(client_id, None)

    def restore(self, states: Mapping[str, bytes], idle_before: float | None = None) -> list[str]:
        """Bring spilled clients back; returns those restored. A state whose latest event is
        older than ``idle_before`` stays out: had it been resident, ``evict_idle`` would have
        forgotten it, so the client starts afresh either way."""
        restored = []
        for client_id, data in states.items():
            self.import_client(client_id, data)
            per = self._clients.get(client_id)
            if per is None:
                continue
            if idle_before is not None and _latest(per) < idle_before:
                del self._clients[client_id]
            else:
                restored.append(client_id)
        return restored


def _latest(per_model: PerModel) -> float:
    """A client's latest event time over its models."""
    return max(s.last_ts for s in per_model.values())
