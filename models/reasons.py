"""Reasons in plain words, with numbers, for the evidence that drives a client's risk."""

from __future__ import annotations

from collections.abc import Callable, Mapping

_Render = Callable[[Mapping[str, float], int], str]

_TEMPLATES: dict[str, _Render] = {
    "out_of_profile": lambda f, n: (
        f"{100 * f['ood_share']:.0f}% of {n} queries lie outside the model's reference data "
        f"(a benign client sends about 0.1%); recent share {100 * f['ood_recent']:.0f}%"
    ),
    "steps": lambda f, n: (
        f"{100 * f['step_share']:.0f}% of {n} queries are small fixed-size steps from an earlier "
        "query (a perturbation chain, as in Jacobian or random-step augmentation)"
    ),
    "boundary": lambda f, n: (
        f"{100 * f['boundary_share']:.0f}% of answers sit on the decision boundary "
        "(reference: 5%) — boundary probing or uncertainty sampling"
    ),
    "far": lambda f, n: (
        f"{100 * f['far_share']:.0f}% of {n} queries lie farther from the model's data than any "
        "reference input (synthetic or other-domain queries, however many natural ones surround them)"
    ),
    "coverage": lambda f, n: (
        f"input-space coverage {f['coverage_ratio']:.1f}× what a benign client reaches after {n} queries"
    ),
}


def explain(
    statistics: Mapping[str, float], features: Mapping[str, float], queries: int, threshold: float
) -> tuple[str, ...]:
    """Reasons for the tests carrying at least a quarter of the alert threshold, strongest first.

    >>> explain({"coverage": 9.0, "steps": 0.1}, {"coverage_ratio": 3.24}, 800, 10.0)
    ('input-space coverage 3.2× what a benign client reaches after 800 queries',)
    """
    ranked = sorted(statistics.items(), key=lambda kv: -kv[1])
    return tuple(_TEMPLATES[name](features, queries) for name, value in ranked if value >= 0.25 * threshold)


def population_reason(percentile: float) -> str:
    """Reason for a client whose whole feature vector is unlike the reference clients'.

    >>> population_reason(0.995)
    'feature profile more unusual than 99.5% of reference clients (population model)'
    """
    return (
        f"feature profile more unusual than {100 * percentile:.1f}% of reference clients (population model)"
    )
