"""The registry of evidence tests: a contract every entry keeps, and one new entry end to end."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest
from pydantic import ValidationError

from querywatch.detector.config import DetectionSettings
from querywatch.features.client import Indicators
from querywatch.models.calibration import Calibration
from querywatch.models.evidence import ClientEvidence, EvidenceTests, evidence_threshold
from querywatch.models.kinds import RateTest
from querywatch.models.reasons import explain
from querywatch.models.registry import EVIDENCE_TESTS, EvidenceTest
from tests.detector.test_engine import DIM, SETTINGS, _events, _profiled_engine

ENTRIES = list(EVIDENCE_TESTS)


def _indicators(rng: np.random.Generator) -> Indicators:
    """Random indicators; fields added later (a new test's indicator) get a random yes/no."""
    fields = {name: bool(rng.random() < 0.5) for name in Indicators._fields}
    fields |= {
        "boundary": None if rng.random() < 0.2 else fields["boundary"],
        "exact": False,
        "margin_rank": None if rng.random() < 0.2 else float(rng.uniform(0.0, 0.6)),
        "margin_rank_null": float(rng.uniform(0.4, 0.6)),
    }
    return Indicators(**fields)


class _Client:
    """One client's state of one registered test, as its evidence holds it."""

    def __init__(self, entry: EvidenceTest, at: int = 2) -> None:
        self.test, self.at = entry.make(), at
        self.s = [0.5] * at + [0.0] * self.test.width + [0.5]  # neighbours' floats around it

    def observe(self, ind: Indicators) -> None:
        self.test.observe(self.s, self.at, ind)

    def score(self, ind: Indicators) -> float:
        return self.test.score(self.s, self.at, ind)

    @property
    def statistic(self) -> float:
        return self.s[self.at]


def _warm(entry: EvidenceTest, n: int = 80) -> tuple[_Client, np.random.Generator]:
    client, rng = _Client(entry), np.random.default_rng(5)
    for _ in range(n):
        client.observe(_indicators(rng))
    return client, rng


@pytest.fixture(params=ENTRIES, ids=lambda e: e.name)
def entry(request: pytest.FixtureRequest) -> EvidenceTest:
    return request.param


@functools.cache
def _snapshot() -> dict[str, float]:
    """A real client's feature snapshot: the names a reason may use."""
    engine = _profiled_engine()
    engine.process_batch(_events("c", np.random.default_rng(2).uniform(-1, 2, size=(40, DIM))))
    return engine._clients["c"]["m"].features.snapshot()


def test_entry_reads_a_real_indicator_and_explains_itself(entry: EvidenceTest) -> None:
    assert entry.indicator in Indicators._fields
    assert entry.reason(_snapshot(), 120, entry.null()).strip()
    assert _Client(entry).statistic == 0.0


def test_scoring_does_not_learn_and_a_test_keeps_to_its_own_floats(entry: EvidenceTest) -> None:
    client, rng = _warm(entry)
    assert client.statistic > 0.0
    assert client.s[: client.at] == [0.5] * client.at and client.s[-1] == 0.5
    before = list(client.s)
    for _ in range(20):
        client.score(_indicators(rng))
    assert client.s == before


def test_state_round_trip_scores_the_same(entry: EvidenceTest) -> None:
    client, rng = _warm(entry)
    clone = _Client(entry, at=0)
    stored = [float(v) for v in client.test.get_state(client.s, client.at)]  # plain floats, as stored
    clone.test.set_state(clone.s, 0, stored)
    for _ in range(30):
        ind = _indicators(rng)
        assert clone.score(ind) == client.score(ind)
        client.observe(ind)
        clone.observe(ind)
    assert clone.statistic == client.statistic


def test_a_state_of_the_wrong_shape_starts_that_test_fresh(entry: EvidenceTest) -> None:
    evidence = ClientEvidence()
    assert evidence.set_state({entry.name: [1.0] * 7}) == list(EVIDENCE_TESTS.names())
    assert evidence.statistics()[entry.name] == 0.0


def test_a_steps_state_stored_before_the_near_alternative_keeps_its_evidence() -> None:
    """An earlier release's steps state holds two alternatives (0.335 and 0.762 at a null of
    0.05); the test now has three, the first twice the null, which starts at 0. A profile
    revision whose reference rate drops the near alternative keeps the other two."""
    evidence = ClientEvidence()
    assert "steps" not in evidence.set_state({"steps": [4.0, 9.5]})
    assert evidence.statistics()["steps"] == 9.5
    assert evidence.get_state()["steps"] == [0.0, 4.0, 9.5]
    cal = Calibration(0.2, 0.05, 0.05, 1.0, 100, steps_null=0.05)  # eight times it: past 0.335
    narrow = ClientEvidence(EvidenceTests(EVIDENCE_TESTS.nulls(cal), calibration=cal))
    assert "steps" not in narrow.set_state({"steps": [7.0, 4.0, 9.5]})
    assert narrow.get_state()["steps"] == [4.0, 9.5]


def test_tolerances_setting_is_checked_against_the_registry() -> None:
    assert DetectionSettings(tolerances={"steps": 0.1}).tolerances == {"steps": 0.1}
    with pytest.raises(ValidationError, match="no evidence test named nope"):
        DetectionSettings(tolerances={"nope": 0.1})
    with pytest.raises(ValidationError, match="tolerance of 'steps'"):
        DetectionSettings(tolerances={"steps": 1.5})


def test_nulls_come_from_the_reference_unless_a_setting_fixes_them() -> None:
    cal = Calibration(
        ood_null=0.3,
        far_null=0.002,
        boundary_null=0.05,
        far_threshold=9.0,
        pseudo_clients=50,
        boundary_multiple=1.7,
    )
    assert EVIDENCE_TESTS.nulls(None) == {
        "out_of_profile": 0.2,
        "steps": 0.05,
        "boundary": 1.0,
        "far": 0.01,
        "confidence": 0.1,
        "isolation": 0.05,
    }
    derived = EVIDENCE_TESTS.nulls(cal)
    assert (derived["out_of_profile"], derived["boundary"], derived["far"]) == (0.3, 1.7, 0.002)
    ranked = replace(cal, rank_margins=((0.2, 0.5, 0.9),), rank_shift=0.13)
    assert EVIDENCE_TESTS.nulls(ranked)["confidence"] == 0.13
    fixed = EVIDENCE_TESTS.nulls(cal, {"out_of_profile": 0.4, "boundary": 2.0, "far": 0.05})
    assert (fixed["out_of_profile"], fixed["boundary"], fixed["far"]) == (0.4, 2.0, 0.05)
    assert EVIDENCE_TESTS.nulls(cal, {"out_of_profile": 0.1})["out_of_profile"] == 0.3  # a floor


def test_tolerances_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from querywatch.detector.config import Settings

    monkeypatch.setenv("QUERYWATCH_DETECTION__TOLERANCES", '{"boundary": 3.0}')
    assert Settings().detection.tolerances == {"boundary": 3.0}


DUMMY = EvidenceTest(
    name="dummy",
    indicator="out_of_profile",
    test=RateTest,
    calibration=lambda cal, configured: 0.01 if configured is None else configured,
    meaning="a test only the test suite registers",
    reason=lambda f, n, null: f"dummy evidence after {n} queries",
)


def test_a_new_entry_reaches_settings_threshold_reasons_state_and_alerts() -> None:
    """What a contributor's new evidence test gets by registering one entry."""
    alpha, registered = SETTINGS.false_alarm_rate, len(EVIDENCE_TESTS)
    with EVIDENCE_TESTS.extended(DUMMY):
        settings = DetectionSettings(**(SETTINGS.model_dump() | {"tolerances": {"dummy": 0.02}}))
        assert settings.tolerances["dummy"] == 0.02
        assert evidence_threshold(alpha) == pytest.approx(np.log((registered + 1) / alpha))
        engine = _profiled_engine(settings)
        rng = np.random.default_rng(3)
        outcomes = engine.process_batch(_events("thief", rng.uniform(-1, 2, size=(120, DIM)))).outcomes
        alert = next(o.alert for o in outcomes if o.alert)
        assert "dummy evidence after" in " ".join(alert.reasons)
        state = engine._clients["thief"]["m"]
        dummy = state.evidence.statistics()["dummy"]
        assert dummy > 0
        stored = engine.export_client("thief")
        restored = _profiled_engine(settings)
        restored.import_client("thief", stored)
        # (statistics of 100 nats and more are stored to the nat: ``models.evidence``)
        kept = restored._clients["thief"]["m"].evidence.statistics()
        assert kept == pytest.approx(state.evidence.statistics(), abs=0.5)
    # A state stored while the entry was registered still loads once it is gone.
    after = _profiled_engine()
    after.import_client("thief", stored)
    assert "dummy" not in after._clients["thief"]["m"].evidence.statistics()
    assert explain({"steps": 9.0}, {"step_share": 0.4}, 10, 10.0, {"steps": 0.05})[0].startswith("40%")


def test_a_reason_gives_what_a_benign_client_of_its_model_may_reach() -> None:
    """A benign client's share differs from model to model (a drift-tolerant out-of-profile
    null of 20% on one, 35% on another): the reason an analyst reads states the model's own,
    not one number true of one model."""
    rng = np.random.default_rng(3)
    thief = rng.uniform(-1, 2, size=(120, DIM))
    texts = {}
    for tolerance in (0.2, 0.35):
        tolerances = {"tolerances": {"out_of_profile": tolerance}}
        settings = DetectionSettings(**(SETTINGS.model_dump() | tolerances))
        outcomes = _profiled_engine(settings).process_batch(_events("thief", thief)).outcomes
        alert = next(o.alert for o in outcomes if o.alert)
        texts[tolerance] = next(r for r in alert.reasons if "outside the model's reference data" in r)
    assert "(a benign client at most 20%)" in texts[0.2]
    assert "(a benign client at most 35%)" in texts[0.35]


@pytest.mark.parametrize("null", [0.001, 0.05, 0.3, 0.45, 0.5, 0.7, 0.95])
@pytest.mark.parametrize(
    "rate_entry", [e for e in ENTRIES if issubclass(e.test, RateTest)], ids=lambda e: e.name
)
def test_a_rate_test_is_built_at_any_null_a_reference_or_a_setting_gives(
    rate_entry: EvidenceTest, null: float
) -> None:
    """A reference sets nulls up to 0.5 (the far test's, on a warm-up of many odd rows),
    a setting anywhere below 1: every alternative stays a rate above the null (the far
    test's "twice the null" was 1.0 at 0.5, and a replay stopped on it)."""
    test = rate_entry.make(null)
    assert isinstance(test, RateTest) and test.alternatives
    assert all(null < q < 1.0 for q in test.alternatives)
