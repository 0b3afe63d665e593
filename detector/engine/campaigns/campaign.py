"""A campaign: accounts linked as one theft, with its links, evidence, risk and reasons.

Pure values and arithmetic over the members' summaries; ``stage`` decides who is linked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from querywatch.detector.engine.alerting import OpenAlert
from querywatch.detector.engine.campaigns.held import HeldSummary
from querywatch.detector.engine.campaigns.lineage import LineageIndex, evidence
from querywatch.detector.engine.outcomes import iso_time
from querywatch.models.evidence import combined
from querywatch.models.profile import ReferenceProfile
from querywatch.models.registry import EVIDENCE_TESTS

#: Pooled rate tests on a campaign's union: (registry test name, summary count). The boundary
#: test is not pooled: its null is a multiple of a chance that varies by input, which a
#: summary's counts do not carry.
POOLED_TESTS = (("out_of_profile", "ood"), ("far", "far"), ("steps", "steps"))
POOLED_WORDS = {
    "out_of_profile": "queries outside the model's reference data",
    "far": "queries farther from the data than any reference input",
    "steps": "structured steps within an account",
}


@dataclass(frozen=True, slots=True)
class Link:
    """Why two accounts were linked: the signal, how strong, and keys they share (support)."""

    a: str
    b: str
    signal: str  # "lineage" (pair) or "lineage with the campaign" (a client against its members)
    evidence: float  # log e-value bound, nats
    hits: int
    trials: int
    shared_keys: tuple[str, ...] = ()

    def reason(self) -> str:
        keys = f"; they also share {', '.join(self.shared_keys)}" if self.shared_keys else ""
        return (
            f"{self.b} linked to {self.a} by {self.signal}: {self.hits} of {self.trials} same-cell "
            f"query pairs are structured steps from one another (evidence {self.evidence:.0f} nats){keys}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "signal": self.signal,
            "evidence": round(self.evidence, 3),
            "hits": self.hits,
            "trials": self.trials,
            "shared_keys": list(self.shared_keys),
        }


@dataclass
class Campaign:
    """One campaign on one model; ``members`` in the order they were found."""

    campaign_id: str
    model_id: str
    members: list[str]
    opened_ts: float
    links: list[Link] = field(default_factory=list)
    risk: float = 0.0
    peak_risk: float = 0.0
    reasons: tuple[str, ...] = ()
    features: dict[str, float] = field(default_factory=dict)
    extraction: float | None = None
    first_alert_ts: float | None = None
    alert: OpenAlert | None = None
    capped: int = 0  # accounts linked but left out: the campaign had reached its cap

    def to_dict(self) -> dict[str, Any]:
        """The replay report's and the API's view (the scorer reads ``campaign_id``,
        ``clients``, ``first_alert_ts``)."""
        return {
            "campaign_id": self.campaign_id,
            "model_id": self.model_id,
            "clients": list(self.members),
            "first_alert_ts": None if self.first_alert_ts is None else iso_time(self.first_alert_ts),
            "risk": round(self.peak_risk, 6),
            "reasons": list(self.reasons),
            "extraction": None if self.extraction is None else round(self.extraction, 4),
            "links": [link.to_dict() for link in self.links],
            "evidence": {k: round(v, 4) for k, v in self.features.items()},
            "capped": self.capped,
        }


def campaign_id_for(model_id: str, first: str, second: str) -> str:
    """Deterministic id of a campaign from its first link (replays give the same ids).

    >>> campaign_id_for("m", "a", "b") == campaign_id_for("m", "a", "b")
    True
    """
    digest = hashlib.sha256(f"{model_id}\x00{first}\x00{second}".encode()).hexdigest()
    return f"cp_{digest[:20]}"


@dataclass(frozen=True)
class UnionEvidence:
    """The calibrated tests run on a campaign's union of accounts."""

    total: float  # fused log e-value (nats)
    lineage: float
    pooled: dict[str, float]
    reasons: tuple[str, ...]
    features: dict[str, float]
    extraction: float | None


def union_evidence(
    members: Sequence[str],
    summaries: Mapping[str, HeldSummary],
    lineage: LineageIndex,
    nulls: Mapping[str, float],
    profile: ReferenceProfile,
    allowance: float,
    expected: NDArray[np.float64],
) -> UnionEvidence:
    """Lineage over every pair of members, the registry's rate tests on the pooled counts
    (fused as a client's tests are: the strongest in full, a family of nested tests once, the
    others beyond ``allowance``), coverage of the union against a benign client of the
    union's size, and the pooled extraction estimate. ``expected`` is the profile's
    ``expected_cells()`` (computed once per model)."""
    present = [m for m in members if m in summaries]
    null = lineage.null
    hits, total_trials = lineage.among(present)
    lineage_evidence = evidence(hits, total_trials, null)
    queries = sum(summaries[m].queries for m in present)
    pooled: dict[str, float] = {}
    rates: dict[str, tuple[float, float]] = {}
    counts = [summaries[m].counts for m in present]  # each unpacked once (``HeldSummary``)
    for name, count in POOLED_TESTS:
        k = sum(getattr(c, count) for c in counts)
        if name in nulls and queries:
            pooled[name] = evidence(k, queries, nulls[name])
            rates[name] = (k / queries, nulls[name])
    # A family of nested tests counts once, by its strongest (far implies out of profile),
    # as in a client's own fusion (``ClientEvidence.total``): pooled counts of far queries
    # are counted again in the out-of-profile ones.
    family = dict(zip(EVIDENCE_TESTS.names(), EVIDENCE_TESTS.families(), strict=True))
    strongest: dict[int, float] = {}
    for name, e in pooled.items():
        strongest[family[name]] = max(strongest.get(family[name], 0.0), e)
    total = combined([lineage_evidence, *strongest.values()], allowance)
    sets = np.array([summaries[m].cell_set()[: profile.cells] for m in present], dtype=np.int64)
    sets = sets.reshape(len(present), profile.cells)
    inter = sets @ sets.T
    sizes = np.diag(inter)
    union = sizes[:, None] + sizes[None, :] - inter
    upper = np.triu_indices(len(present), k=1)
    overlaps = np.divide(inter, union, out=np.zeros(union.shape), where=union > 0)[upper]
    reached = int(np.count_nonzero(sets.any(axis=0)))
    benign_cells = float(expected[min(max(queries, 1), len(expected)) - 1])
    coverage_ratio = reached / benign_cells if benign_cells else 0.0
    reasons = [
        f"{len(present)} accounts, {queries} queries: {hits} of {total_trials} same-cell pairs of their "
        f"sampled queries are structured steps from one another (reference rate {null:.1e}; "
        f"evidence {lineage_evidence:.0f} nats) — one perturbation chain dealt over accounts",
    ]
    for name, e in sorted(pooled.items(), key=lambda kv: -kv[1]):
        if e > allowance:
            rate, base = rates[name]
            reasons.append(
                f"pooled, {100 * rate:.0f}% {POOLED_WORDS[name]} (a benign client at most {100 * base:.0f}%)"
            )
    reasons.append(
        f"together they reached {reached} input cells, {coverage_ratio:.1f}× what one "
        f"benign client reaches after {queries} queries; mean cell overlap between accounts "
        f"{100 * (float(np.mean(overlaps)) if len(overlaps) else 0.0):.0f}%"
    )
    extraction = _pooled_extraction(present, summaries, profile, queries)
    features = {
        "accounts": float(len(present)),
        "queries": float(queries),
        "lineage_evidence": lineage_evidence,
        "lineage_hits": float(hits),
        "lineage_trials": float(total_trials),
        "union_cells": float(reached),
        "union_coverage_ratio": coverage_ratio,
        **{f"pooled_{k}": v for k, v in pooled.items()},
    }
    return UnionEvidence(total, lineage_evidence, pooled, tuple(reasons), features, extraction)


def _pooled_extraction(
    members: Sequence[str], summaries: Mapping[str, HeldSummary], profile: ReferenceProfile, queries: int
) -> float | None:
    """The reference's learning curve at the union's queries, times the members' mean
    usefulness (each member's estimate over the curve at its own queries)."""
    ref = profile.extraction
    known = [summaries[m] for m in members if summaries[m].extraction is not None]
    if ref is None or not known:
        return None
    ratios = [min(1.0, (s.extraction or 0.0) / max(ref.curve(s.queries), 1e-9)) for s in known]
    return ref.curve(queries) * float(np.mean(ratios))
