"""Reasons in plain words, with numbers, for the evidence that drives a client's risk.

Each evidence test's text is its registry entry's ``reason`` (``querywatch.models.registry``).
"""

from __future__ import annotations

from collections.abc import Mapping

from querywatch.models.registry import EVIDENCE_TESTS, Registry


def explain(
    statistics: Mapping[str, float],
    features: Mapping[str, float],
    queries: int,
    threshold: float,
    nulls: Mapping[str, float],
    registry: Registry = EVIDENCE_TESTS,
) -> tuple[str, ...]:
    """Reasons for the tests carrying at least a quarter of the alert threshold, strongest first,
    each with what a benign client of the model may reach (its test's null in ``nulls``).

    >>> statistics, nulls = {"far": 9.0, "steps": 0.1}, {"far": 0.05, "steps": 0.05}
    >>> (far,) = explain(statistics, {"far_share": 0.96}, 800, 10.0, nulls)
    >>> far.endswith("a benign client at most 5%)")
    True
    >>> explain({"steps": 9.0}, {"step_share": 0.31}, 200, 10.0, {"steps": 0.05})[0][:62]
    '31% of 200 queries are small fixed-size steps from an earlier '
    """
    ranked = sorted(statistics.items(), key=lambda kv: -kv[1])
    strong = (name for name, value in ranked if value >= 0.25 * threshold)
    return tuple(registry[name].reason(features, queries, nulls[name]) for name in strong)


def population_reason(percentile: float) -> str:
    """Reason for a client whose whole feature vector is unlike the reference clients'.

    >>> population_reason(0.995)
    'feature profile more unusual than 99.5% of reference clients (population model)'
    """
    return (
        f"feature profile more unusual than {100 * percentile:.1f}% of reference clients (population model)"
    )
