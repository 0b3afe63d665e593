"""The fusion of a client's evidence tests into one total."""

from __future__ import annotations

from querywatch.features.client import Indicators
from querywatch.models.evidence import ClientEvidence, EvidenceTests, evidence_threshold
from querywatch.models.registry import EVIDENCE_TESTS

THRESHOLD = evidence_threshold(1e-4)
ALLOWANCE = 0.25 * THRESHOLD
TESTS = EvidenceTests({"out_of_profile": 0.2, "far": 0.1})


def _query(out: bool, far: bool = False, step: bool = False) -> Indicators:
    return Indicators(out, step, None, False, far)


def _noisy_run() -> list[Indicators]:
    """A noisy but genuine client's run of queries beyond the profile: some of them beyond the
    far threshold too, which they can only be if they are out of profile."""
    return [_query(out=k % 2 == 0, far=k % 2 == 0 and (k // 2) % 3 != 2) for k in range(44)]


def test_nested_tests_count_once_in_the_total() -> None:
    # The far test's indicator implies the out-of-profile test's: both rise on the same queries.
    assert EVIDENCE_TESTS.families()[EVIDENCE_TESTS.names().index("far")] == EVIDENCE_TESTS.families()[0]
    ev = ClientEvidence(TESTS)
    for ind in _noisy_run():
        ev.update(ind)
    stats = ev.statistics()
    assert stats["out_of_profile"] > ALLOWANCE and stats["far"] > ALLOWANCE
    assert ev.total(ALLOWANCE) == max(stats["out_of_profile"], stats["far"])
    # Counted as independent, the one run of noisy queries would have crossed the threshold.
    assert max(stats.values()) < THRESHOLD < sum(stats.values()) - ALLOWANCE


def test_independent_tests_still_add_what_they_carry_beyond_the_allowance() -> None:
    ev = ClientEvidence(TESTS)
    for k, ind in enumerate(_noisy_run()):
        ev.update(ind._replace(step=k % 3 == 0))
    stats = ev.statistics()
    family = max(stats["out_of_profile"], stats["far"])
    assert stats["steps"] > ALLOWANCE
    assert ev.total(ALLOWANCE) == family + stats["steps"] - ALLOWANCE
