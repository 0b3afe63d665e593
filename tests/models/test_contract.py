"""One contract every detector keeps: scoring does not learn, state pickles, warm-up is explicit."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from querywatch.models.evidence import evidence_threshold
from querywatch.models.population import POPULATION_FEATURES, PopulationModel
from querywatch.models.sequential import BernoulliCUSUM


class _Bernoulli:
    name = "BernoulliCUSUM"

    def make(self) -> Any:
        return BernoulliCUSUM(null_rate=0.05)

    def sample(self, rng: np.random.Generator) -> tuple[Any, ...]:
        return (bool(rng.random() < 0.5),)

    def score(self, d: Any, x: tuple[Any, ...]) -> float:
        return float(d.score_one(*x))

    def learn(self, d: Any, x: tuple[Any, ...]) -> None:
        d.learn_one(*x)

    def state(self, d: Any) -> Any:
        return d.statistic


class _Population(_Bernoulli):
    name = "PopulationModel"

    def make(self) -> Any:
        rng = np.random.default_rng(0)
        ref = [dict(zip(POPULATION_FEATURES, v, strict=True)) for v in rng.uniform(0, 0.3, size=(50, 9))]
        return PopulationModel(seed=0).fit(ref)

    def sample(self, rng: np.random.Generator) -> tuple[Any, ...]:
        return (dict(zip(POPULATION_FEATURES, rng.uniform(0, 1, 9).tolist(), strict=True)),)

    def state(self, d: Any) -> Any:
        return d.score_one(dict.fromkeys(POPULATION_FEATURES, 0.5))


DETECTORS = [_Bernoulli(), _Population()]


@pytest.fixture(params=DETECTORS, ids=lambda d: d.name)
def detector(request: pytest.FixtureRequest) -> Any:
    return request.param


def _warm(detector: Any, n: int = 60) -> tuple[Any, np.random.Generator]:
    d = detector.make()
    rng = np.random.default_rng(1)
    for _ in range(n):
        detector.learn(d, detector.sample(rng))
    return d, rng


def test_score_does_not_change_state(detector: Any) -> None:
    d, rng = _warm(detector)
    before = detector.state(d)
    for _ in range(20):
        detector.score(d, detector.sample(rng))
    assert detector.state(d) == before


def test_score_does_not_alias_its_input(detector: Any) -> None:
    d, rng = _warm(detector)
    x = detector.sample(rng)
    kept = copy.deepcopy(x)
    detector.score(d, x)
    detector.learn(d, x)
    assert x == kept


def test_pickle_round_trip_scores_the_same(detector: Any) -> None:
    d, rng = _warm(detector)
    clone = pickle.loads(pickle.dumps(d))
    for _ in range(10):
        x = detector.sample(rng)
        assert detector.score(clone, x) == detector.score(d, x)


def test_fresh_detector_scores_nothing(detector: Any) -> None:
    if detector.name == "PopulationModel":
        assert PopulationModel().score_one(dict.fromkeys(POPULATION_FEATURES, 1.0)) == 0.0
        assert PopulationModel().percentile({}) == 0.0
    else:
        assert detector.state(detector.make()) == 0.0


def test_population_model_never_learns_live_clients() -> None:
    model = _Population().make()
    odd = dict.fromkeys(POPULATION_FEATURES, 0.9)
    before = model.percentile(odd)
    for _ in range(100):
        model.learn_one(odd)
    assert model.percentile(odd) == before


@pytest.mark.parametrize(("rate", "most"), [(0.0, 0), (0.02, 0), (0.05, 5)])
def test_bernoulli_cusum_rarely_alarms_at_or_below_the_null_rate(rate: float, most: int) -> None:
    """At the engine's threshold the average run length under the null is >= 1/alpha events:
    a client exactly at the tolerated rate rarely alarms within 5,000 events; one below it never."""
    threshold = evidence_threshold(1e-4)
    rng = np.random.default_rng(7)
    alarms = 0
    for _ in range(100):
        test = BernoulliCUSUM(null_rate=0.05)
        for x in rng.random(5000) < rate:
            test.learn_one(bool(x))
            if test.statistic >= threshold:
                alarms += 1
                break
    assert alarms <= most


def test_bernoulli_cusum_detects_a_late_change_quickly() -> None:
    test = BernoulliCUSUM(null_rate=0.05)
    rng = np.random.default_rng(3)
    for x in rng.random(2000) < 0.02:
        test.learn_one(bool(x))
    steps = 0
    for x in rng.random(500) < 0.5:
        test.learn_one(bool(x))
        steps += 1
        if test.statistic > evidence_threshold(1e-4):
            break
    assert steps < 40


@pytest.mark.parametrize(
    "make",
    [
        lambda: BernoulliCUSUM(0.0),
        lambda: BernoulliCUSUM(0.5, (0.4,)),
        lambda: PopulationModel(n_trees=0),
    ],
)
def test_bad_hyperparameters_raise_value_error(make: Callable[[], Any]) -> None:
    with pytest.raises(ValueError):
        make()
